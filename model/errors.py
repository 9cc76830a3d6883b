"""Error type for every invalid architecture: a stable machine-readable code plus a human message."""

from __future__ import annotations


class ArchitectureError(ValueError):
    """An architecture that cannot be parsed, validated or tokenized.

    ``code`` is a short stable identifier (e.g. ``cycle``, ``unknown_op``) that the service returns in its
    4xx bodies; the message names the offending part of the input.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message
