"""The service's request bodies (pydantic): what each route accepts, and the cursor it means."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from repoctx.plan import cursor_between
from repoctx.types import Cursor, Snippet

from .screening import reject_lone_surrogates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Unicode:
    """Bodies whose strings must all be Unicode text (a lone surrogate is a 422, not a 500)."""

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)


class CompletionBody(_Unicode, BaseModel):
    """OpenAI's /v1/completions request; fields repoctx does not support are refused, unknown ones ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1, le=1)
    user: str | None = None
    path: str = Field("", max_length=1024, description="repoctx extension: the file's path, for FIM prompts")
    language: str | None = Field(None, max_length=64, description="repoctx extension: the file's language")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt is supported (a string, or a list of one string)")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("logprobs are not supported")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class SnippetBody(_Strict):
    path: str = Field(min_length=1, max_length=1024)
    start_line: int = Field(0, ge=0, description="0-based first line")
    end_line: int | None = Field(None, ge=0, description="0-based, exclusive; default: start_line + the text's lines")
    text: str
    source: str = Field("client", min_length=1, max_length=64)

    @property
    def lines_text(self) -> str:
        """The text as the library holds snippet text: its lines joined, no final newline."""
        return self.text[:-1] if self.text.endswith("\n") else self.text

    @model_validator(mode="after")
    def _lines(self) -> "SnippetBody":
        if self.end_line is None:
            self.end_line = self.start_line + self.lines_text.count("\n") + 1
        if self.end_line < self.start_line:
            raise ValueError(f"end_line {self.end_line} is before start_line {self.start_line}")
        return self

    def snippet(self) -> Snippet:
        return Snippet(path=self.path, start_line=self.start_line, end_line=int(self.end_line or 0),
                       text=self.lines_text, source=self.source, reason="sent by the client")


class CodeCompletionBody(_Unicode, _Strict):
    prefix: str
    suffix: str = ""
    language: str | None = Field(None, max_length=64)
    path: str = Field("untitled", min_length=1, max_length=1024)
    snippets: list[SnippetBody] = Field(default_factory=list)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    repos: list[str] = Field(default_factory=list, description="shared repositories whose context is added")
    repo_name: str = Field("", max_length=256, description="the client's repository name, for templates with one")
    budget: int | None = Field(None, ge=0, description="context tokens; default: the configured assembly budget")
    long_context: bool | None = Field(None, description="force (true) or forbid (false) the long-context engine")
    model: str | None = None

    def cursor(self) -> Cursor:
        return cursor_between(self.path, self.prefix, self.suffix, self.language)


class ContextBody(_Unicode, _Strict):
    repo: str = Field(min_length=1)
    path: str = Field(min_length=1, max_length=1024)
    prefix: str | None = None
    suffix: str | None = None
    text: str | None = None
    line: int | None = Field(None, ge=0, description="0-based")
    column: int | None = Field(None, ge=0, description="0-based")
    language: str | None = Field(None, max_length=64)
    budget: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _cursor_given(self) -> "ContextBody":
        if self.text is not None:
            if self.prefix is not None or self.suffix is not None:
                raise ValueError("give either prefix/suffix or text+line+column, not both")
            if self.line is None or self.column is None:
                raise ValueError("text needs line and column")
        elif self.prefix is None:
            raise ValueError("give prefix (and suffix) or text+line+column")
        return self

    def cursor(self) -> Cursor:
        if self.text is not None:
            return Cursor(path=self.path, text=self.text, line=int(self.line or 0), column=int(self.column or 0),
                          language=self.language)
        return cursor_between(self.path, self.prefix or "", self.suffix or "", self.language)

