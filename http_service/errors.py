"""The service's errors and their JSON bodies (OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from .security import retry_after_header

CLIENT_GONE = 499  # nginx's "client closed request": what metrics record for an abandoned request


class ServiceError(Exception):
    """An error with an HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.retry_after = retry_after


class ClientGone(Exception):
    """The client disconnected while its request waited or ran."""


def _printable(text: str | None) -> str | None:
    """Text that can be encoded as UTF-8: a message may quote what a client sent (a field
    name, a model id), lone surrogates included, and must still become a response."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


def error_response(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                   param: str | None = None, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after is not None else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="repoctx"'}
    body = {"error": {"message": _printable(message), "type": kind, "param": _printable(param), "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    parts: list[str] = []
    first: str | None = None
    for error in errors[:8]:
        loc = [str(item) for item in error.get("loc", ()) if item not in ("body",)]
        where = ".".join(loc)
        first = first or where or None
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error") or error.get("msg", "")
            parts.append(f"malformed JSON in the request body: {detail}")
        elif error.get("type") == "missing" and not where:
            parts.append("the request body is missing; send a JSON object")
        else:
            parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    if len(errors) > 8:
        parts.append(f"... and {len(errors) - 8} more")
    return "; ".join(parts), first
