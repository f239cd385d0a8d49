"""Completer plumbing: the engine stops once a multi-line completion passes max_lines."""

from repoctx.config import Config
from repoctx.pipeline import Completer, RepoContext
from tests.helpers import make_repo
from tests.lsp_support import ScriptedEngine
from tests.model_support import needs_qwen


def test_multiline_generation_stops_past_max_lines(tmp_path):
    root = make_repo(tmp_path, {"a.py": "def f(items):\n    \n"})
    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")}, "completion": {"max_lines": 3, "multiline": "always"}})
    body = "".join(f"    x_{i} = items[{i}]\n" for i in range(40))[4:]
    engine = ScriptedEngine(script=body)
    completer = Completer(RepoContext(root, config), engine, config)
    completer.repo.build_index()
    cursor = completer.repo.workspace.read("a.py")
    from repoctx.types import Cursor

    result = completer.complete(Cursor("a.py", cursor, 1, 4))
    record = engine.log[-1]
    assert record["emitted"] < record["planned"] / 4, record
    assert result.finish_reason == "stop"
    assert result.text.count("\n") <= 2 and result.text.startswith("x_0 = items[0]")


def test_cut_prefix_start_moves_rarely_while_a_line_grows(monkeypatch):
    import repoctx.plan as plan
    from repoctx.tokenizer import ByteTokenizer
    from repoctx.types import Cursor

    lines = [f"value_{i} = compute({i})" for i in range(200)]

    def starts() -> list[int]:
        out = []
        for typed in range(0, 300):
            text = "\n".join(lines[:150] + ["x" * typed] + lines[150:])
            window = plan.prompt_window(Cursor("a.py", text, 150, typed), ByteTokenizer(), 1000, 200)
            assert window.prefix.endswith("x" * typed) and len(window.prefix.encode()) <= 1000
            out.append(window.start_line)
        return out

    anchored = starts()
    assert all(start % plan.PREFIX_ANCHOR_LINES == 0 for start in anchored)
    monkeypatch.setattr(plan, "PREFIX_ANCHOR_LINES", 1)
    unanchored = starts()
    changes = lambda seq: sum(a != b for a, b in zip(seq, seq[1:]))  # noqa: E731
    assert changes(anchored) <= 1 < changes(unanchored)
    # Up to the cursor line's reserve the start does not move at all, anchored or not.
    assert changes(unanchored[: plan.CURSOR_LINE_RESERVE + 1]) == 0


def test_an_overflowing_prompt_is_assembled_again_never_retrieved_again(tmp_path, monkeypatch):
    """When the whole prompt counts more than its parts (tokens merge across a join), the same
    candidates are assembled again with a smaller budget; the retrievers run once."""
    from repoctx.tokenizer import ByteTokenizer
    from repoctx.types import Cursor

    files = {f"lib/shapes_{i}.py": f"def area_{i}(width, height):\n    return width * height * {i}\n" for i in range(12)}
    files["app.py"] = "".join(f"from lib.shapes_{i} import area_{i}\n" for i in range(12)) + "total = area_3(\n"
    root = make_repo(tmp_path, files)
    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")}, "assembly": {"budget": 2000},
                               "retrieval": {"time_limit_ms": {s: 5000.0 for s in ("imports", "lexical", "typed_hole", "recent")}}})

    class JoinTokenizer(ByteTokenizer):
        """Bytes, plus 30 tokens whenever context and the current file meet in one text."""

        def count(self, text: str) -> int:
            return super().count(text) + (30 if "def area_" in text and "total = area_3(" in text else 0)

    engine = ScriptedEngine(script="1, 2)")
    engine.tokenizer = JoinTokenizer()
    engine.context_window = 1200  # less room than the candidates fill: the first prompt overflows
    repo = RepoContext(root, config)
    completer = Completer(repo, engine, config)
    repo.build_index()
    import repoctx.pipeline as pipeline

    calls = {"retrieve": 0, "assemble": 0}
    retrieve, assemble = repo.retrieve, pipeline.assemble_candidates

    def counting_retrieve(*args, **kwargs):
        calls["retrieve"] += 1
        return retrieve(*args, **kwargs)

    def counting_assemble(*args, **kwargs):
        calls["assemble"] += 1
        return assemble(*args, **kwargs)

    monkeypatch.setattr(repo, "retrieve", counting_retrieve)
    monkeypatch.setattr(pipeline, "assemble_candidates", counting_assemble)
    text = repo.workspace.read("app.py")
    lines = text.split("\n")
    plan = completer.plan(completer.candidates(Cursor("app.py", text, len(lines) - 2, len(lines[-2]))))
    assert calls["retrieve"] == 1 and calls["assemble"] >= 2, calls
    assert plan.context.snippets and engine.tokenizer.count(plan.prompt) <= completer.room()


def test_the_cursor_line_goes_after_the_middle_token_only_for_an_engine_that_heals(tmp_path):
    from repoctx.types import Cursor

    root = make_repo(tmp_path, {"a.py": "import os\n\ndef f():\n    return os.pa\n"})
    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")}, "assembly": {"line_start_middle": True},
                               "engine": {"template": "qwen2.5-coder"}})
    cursor = Cursor("a.py", (root / "a.py").read_text(), 3, 16)

    class Healing(ScriptedEngine):
        heals_tokens = True

    plans = {}
    for name, engine in (("heals", Healing(script="th")), ("plain", ScriptedEngine(script="th"))):
        completer = Completer(RepoContext(root, config), engine, config)
        completer.repo.build_index()
        plans[name] = completer.plan(completer.candidates(cursor))
        completer.close()
    assert plans["heals"].prompt.endswith("<|fim_middle|>    return os.pa")
    assert plans["heals"].request.heal_last_token
    assert plans["plain"].prompt.endswith("<|fim_middle|>") and not plans["plain"].request.heal_last_token


@needs_qwen
def test_typing_a_long_line_changes_only_the_typed_tokens_of_the_prompt(tmp_path):
    """Per keystroke on one line the prompt re-evaluates only the typed line's tokens and what
    follows it: the file's window before the line and everything after the cursor (the suffix and
    ``<|fim_middle|>``) are the same token sequence from keystroke to keystroke, with the default
    budgets and the engine's window, also where a prefix budget that the growing line shares
    with the lines above would move the window's first line across an anchor."""
    import repoctx.plan as plan
    from repoctx.pipeline import needed_window
    from repoctx.types import Cursor

    config = Config.from_dict({"index": {"location": str(tmp_path / "ix")}})
    engine = ScriptedEngine(script="x", tokenizer_model="qwen2.5-coder-0.5b")
    engine.context_window = needed_window(config)
    tokenizer = engine.tokenizer
    lines = "".join(
        f"def step_{i}(records, limit={i}):\n"
        f"    kept = [r for r in records if r.weight_{i % 7} > limit]\n"
        f"    return sorted(kept, key=lambda r: (r.rank, r.name_{i % 5}))[:limit]\n\n"
        for i in range(120)
    ).split("\n")
    typed_line = ("    merged = combine_records(records, kept_records, weights=compute_weights(records, limit), "
                  "names=[record.name for record in records if record.active], ranks=rank_all(records))")

    def shared_budget_start(at: int, head: str) -> int:
        """Where the window would start if the cursor line and the lines above shared one budget."""
        spent, start = tokenizer.count(head), at
        while start > 0 and spent + tokenizer.count(lines[start - 1]) + 1 <= config.assembly.prefix_tokens:
            start -= 1
            spent += tokenizer.count(lines[start]) + 1
        return -(-start // plan.PREFIX_ANCHOR_LINES) * plan.PREFIX_ANCHOR_LINES

    # A new line to type, opened where sharing the budget would move the window's first line.
    at = next(i for i in range(300, 400) if shared_budget_start(i, "    ") != shared_budget_start(i, typed_line))
    root = make_repo(tmp_path, {"steps.py": "\n".join([*lines[:at], "    ", *lines[at:]])})
    completer = Completer(RepoContext(root, config), engine, config)
    suffix_marker = tokenizer.encode(completer.template.fim_suffix)
    assert len(suffix_marker) == 1
    previous, starts = None, set()
    for typed in range(5, len(typed_line) + 1):
        text = "\n".join([*lines[:at], typed_line[:typed], *lines[at:]])
        plan_ = completer.plan(completer.candidates(Cursor("steps.py", text, at, typed), sources=[]))
        tokens = tokenizer.encode(plan_.prompt)
        tail = tokens[tokens.index(suffix_marker[0]):]
        starts.add(plan_.window.start_line)
        if previous is not None:
            common = next((i for i, (a, b) in enumerate(zip(previous[0], tokens)) if a != b), len(tokens))
            # The typed line's tokens so far, the suffix and <|fim_middle|>, and one token the typed
            # character may merge with: nothing before the typed line is evaluated again.
            assert len(tokens) - common <= tokenizer.count(typed_line[:typed]) + len(tail) + 1, (typed, plan_.window.start_line)
            assert tail == previous[1], typed
        previous = (tokens, tail)
    assert len(starts) == 1, sorted(starts)
