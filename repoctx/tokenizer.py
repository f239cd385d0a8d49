"""The one tokenizer abstraction: exact token counts for budgets.

Budgets are only exact when counted with the tokenizer of the model that will read
the prompt, so engines hand theirs to the assembler. `ByteTokenizer` is the fast
fallback when no model is known: one token per UTF-8 byte, which never
under-counts a byte-level BPE (every such token covers at least one byte), so a
budget filled with it cannot overflow the real window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .cache import LRUCache


@runtime_checkable
class Tokenizer(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, text: str) -> int: ...


class _CountCache(LRUCache[str, int]):
    """Counts are asked for the same snippets on every keystroke; remember them."""

    def __init__(self, size: int = 8192) -> None:
        super().__init__(size)

    def count(self, text: str, encode: Callable[[str], list[int]]) -> int:
        """The number of tokens `encode` makes of `text`, encoding it only when not remembered."""
        return self.get_or_make(text, lambda: len(encode(text)))


class ByteTokenizer:
    """One token per UTF-8 byte: fast, model-free, never under-counts."""

    name = "bytes"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))


class LlamaCppTokenizer:
    """The exact tokenizer of a GGUF model, loaded vocabulary-only (no weights, ~100 ms)."""

    def __init__(self, gguf_path: str, llama: object | None = None) -> None:
        self.name = f"gguf:{gguf_path}"
        if llama is None:
            from .engines.llama_loading import open_llama

            llama = open_llama(str(gguf_path), vocab_only=True)
        self._llama = llama
        self._cache = _CountCache()

    def encode(self, text: str) -> list[int]:
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids: list[int]) -> str:
        return self._llama.detokenize(ids).decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        return self._cache.count(text, self.encode)


class HFTokenizer:
    """The exact tokenizer of a Hugging Face model directory (or a loaded tokenizer)."""

    def __init__(self, tokenizer: object, name: str = "hf") -> None:
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            name, tokenizer = tokenizer, AutoTokenizer.from_pretrained(tokenizer)
        self.name = name
        self._tok = tokenizer
        self._cache = _CountCache()

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def count(self, text: str) -> int:
        return self._cache.count(text, self.encode)


def truncate_to_tokens(tokenizer: Tokenizer, text: str, limit: int, keep: str = "head") -> str:
    """The longest head (or tail) of `text` whose token count is at most `limit`."""
    if limit <= 0:
        return ""
    if tokenizer.count(text) <= limit:
        return text
    ids = tokenizer.encode(text)
    part = ids[:limit] if keep == "head" else ids[-limit:]
    result = tokenizer.decode(part)
    # Decoding a cut inside a multi-byte character can re-encode longer; shave until it fits.
    while result and tokenizer.count(result) > limit:
        result = result[:-1] if keep == "head" else result[1:]
    return result
