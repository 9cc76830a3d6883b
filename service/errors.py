"""Service-level errors: an HTTP status plus the stable ``{"error": {"code", "message"}}`` body."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request the service refuses; rendered as ``status`` with ``{"error": {"code": code, "message": message}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # extra response headers, e.g. Retry-After on 503


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
