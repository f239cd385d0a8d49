"""Token counts of the model tokenizers are remembered per text."""

from __future__ import annotations

from repoctx.tokenizer import HFTokenizer


class _Encoder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self.calls.append(text)
        return list(range(len(text.split())))


def test_a_text_is_encoded_once_for_its_count():
    encoder = _Encoder()
    tokenizer = HFTokenizer(encoder, name="fake")
    assert tokenizer.count("one two three") == 3
    assert tokenizer.count("one two three") == 3
    assert tokenizer.count("four") == 1
    assert encoder.calls == ["one two three", "four"]
