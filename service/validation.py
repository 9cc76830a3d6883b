"""Readable 4xx answers for pydantic validation errors: each names its location (``architectures.0.arch``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.schemas import SPACES

MAX_REPORTED_ERRORS = 5


def describe_validation_errors(errors: list[dict[str, Any]], supported_spaces: Sequence[str]) -> tuple[int, str, str]:
    """(status, code, message) for pydantic errors of a request body; the message names each location."""
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error["type"] == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return 400, "malformed_json", f"request body is not valid JSON: {reason} at position {loc[-1] if loc else '?'}"
        if loc == ("body",) and error["type"] == "missing":
            return 400, "malformed_json", "request body is missing; send a JSON object with Content-Type: application/json"
        if loc == ("body",) and isinstance(error.get("input"), bytes | str):
            return 400, "malformed_json", "request body must be a JSON object sent with Content-Type: application/json"
    for error in errors:
        loc = _location(error.get("loc", ()))
        if error["type"] == "union_tag_invalid":
            tag = (error.get("ctx") or {}).get("tag")
            supported = ", ".join(supported_spaces)
            return 422, "unsupported_space", f"{loc}.space: unknown space {tag!r}; supported spaces: {supported or 'none loaded'}"
        if error["type"] == "too_short" and loc == "architectures":
            return 422, "empty_batch", "architectures: the list is empty; send at least one architecture"
    parts = [_describe(error) for error in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"(and {len(errors) - MAX_REPORTED_ERRORS} more errors)")
    return 422, "invalid_request", "; ".join(parts)


def _describe(error: dict[str, Any]) -> str:
    loc = _location(error.get("loc", ()))
    if error["type"] == "union_tag_not_found":
        return f"{loc}.space: field required (one of {', '.join(SPACES)})"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{loc}: {message}" if loc else message


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """Dotted location without the leading 'body' and without the discriminator tag of architectures."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    if len(parts) >= 3 and parts[0] == "architectures" and isinstance(parts[1], int) and parts[2] in SPACES:
        del parts[2]
    return ".".join(str(p) for p in parts) or "body"
