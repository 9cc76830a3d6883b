"""Shared field coercion for the layer-list spaces (FBNet, OFA): one field into a fixed-length list of items."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from model.errors import ArchitectureError


def field_items(value: object, count: int, code: str, what: str) -> list[Any]:
    """A space-separated string, a sequence or a 1-D array as a list of exactly ``count`` items.

    ``code`` is the error code and ``what`` names the field in the message (e.g. "OFA field 'ks'").
    """
    if isinstance(value, str):
        items: list[Any] = value.split()
    elif isinstance(value, Sequence) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = list(value)
    else:
        raise ArchitectureError(code, f"{what} must be a space-separated string or a sequence, got {type(value).__name__}")
    if len(items) != count:
        raise ArchitectureError(code, f"{what} needs {count} values, got {len(items)}")
    return items


def as_int(item: object) -> int | None:
    """An integer (or a string of one) as int; anything else (bools included) as None."""
    if isinstance(item, Integral) and not isinstance(item, bool):
        return int(item)
    if isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return None
    return None
