"""Prediction caches behind one small interface, so a shared (e.g. Redis) cache can be added later.

Keys are strings ``"<predictor>@<version>:<canonical key>"``; values map every target of the predictor to a float.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol

Prediction = dict[str, float]


class PredictionCache(Protocol):
    """What the predict pipeline needs from a cache."""

    def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        """Value of each key, or None where missing, in key order."""
        ...

    def set_many(self, items: Mapping[str, Prediction]) -> None:
        """Store the given values."""
        ...


class NullCache:
    """A cache that stores nothing (``cache_size=0``)."""

    def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        return [None] * len(keys)

    def set_many(self, items: Mapping[str, Prediction]) -> None:
        return None


class LRUCache:
    """Thread-safe in-process least-recently-used cache with at most ``maxsize`` entries."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("LRUCache needs maxsize >= 1; use NullCache to disable caching")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, Prediction] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        found: list[Prediction | None] = []
        with self._lock:
            for key in keys:
                value = self._data.get(key)
                if value is None:
                    self.misses += 1
                else:
                    self._data.move_to_end(key)
                    self.hits += 1
                found.append(value)
        return found

    def set_many(self, items: Mapping[str, Prediction]) -> None:
        with self._lock:
            for key, value in items.items():
                self._data[key] = value
                self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)


def make_cache(size: int) -> PredictionCache:
    """An LRU cache of ``size`` entries, or a NullCache when ``size`` is 0."""
    return LRUCache(size) if size > 0 else NullCache()
