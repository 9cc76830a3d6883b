"""Service-level errors: an HTTP status plus the stable ``{"error": {"code", "message"}}`` body."""

from __future__ import annotations

from typing import Any

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
