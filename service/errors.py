"""Service-level errors: an HTTP status plus the stable ``{"error": {"code", "message"}}`` body."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from service.logs import REQUEST_ID


class ServiceError(Exception):
    """A request the service refuses; rendered as ``status`` with ``{"error": {"code": code, "message": message}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # extra response headers, e.g. Retry-After on 503


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error body; inside a request it also names the request's ID (as sent back in ``X-Request-ID``)."""
    body: dict[str, Any] = {"code": code, "message": message}
    request_id = REQUEST_ID.get()
    if request_id is not None:
        body["request_id"] = request_id
    return {"error": body}


async def send_error(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer with ``status`` and the error body straight from ASGI middleware (before the app, or its body, is reached)."""
    payload = json.dumps(error_body(code, message)).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
    await send({"type": "http.response.body", "body": payload})
