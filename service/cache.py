"""Prediction caches behind one small async interface: in-process LRU (default), none, or Redis (``service.redis_cache``)
with a small in-process LRU in front of it (``TieredCache``).

Keys are strings ``"<predictor>@<version>:<canonical key>"``; values map every target of the predictor to a float.
The in-process caches never wait, so their ``async`` methods only keep one interface for the pipeline.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from service.settings import Settings

Prediction = dict[str, float]


class PredictionCache(Protocol):
    """What the predict pipeline needs from a cache; a cache never raises, it answers misses instead."""

    async def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        """Value of each key, or None where missing, in key order."""
        ...

    async def set_many(self, items: Mapping[str, Prediction]) -> None:
        """Store the given values."""
        ...

    async def aclose(self) -> None:
        """Release connections (called when the app shuts down)."""
        ...


class NullCache:
    """A cache that stores nothing (``cache_size=0``)."""

    async def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        return [None] * len(keys)

    async def set_many(self, items: Mapping[str, Prediction]) -> None:
        return None

    async def aclose(self) -> None:
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

    async def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
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

    async def set_many(self, items: Mapping[str, Prediction]) -> None:
        with self._lock:
            for key, value in items.items():
                self._data[key] = value
                self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    async def aclose(self) -> None:
        return None


class TieredCache:
    """A per-worker LRU (``near``) in front of a shared cache (``far``, Redis): a repeated query skips the round trip.

    Cached values never go stale: a key names the predictor's version, and a new fit or card is a new version. So a near
    entry needs no expiry and no invalidation; it lives until the LRU evicts it. Far hits are copied into the near cache;
    new values go to both.
    """

    def __init__(self, near: LRUCache, far: PredictionCache) -> None:
        self.near = near
        self.far = far

    async def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        found = await self.near.get_many(keys)
        missing = [index for index, value in enumerate(found) if value is None]
        if not missing:
            return found
        fetched = await self.far.get_many([keys[index] for index in missing])
        copied: dict[str, Prediction] = {}
        for index, value in zip(missing, fetched, strict=True):
            if value is not None:
                found[index] = copied[keys[index]] = value
        if copied:
            await self.near.set_many(copied)
        return found

    async def set_many(self, items: Mapping[str, Prediction]) -> None:
        await self.near.set_many(items)
        await self.far.set_many(items)

    async def aclose(self) -> None:
        await self.far.aclose()


def make_cache(size: int) -> PredictionCache:
    """An LRU cache of ``size`` entries, or a NullCache when ``size`` is 0."""
    return LRUCache(size) if size > 0 else NullCache()


def cache_from_settings(settings: Settings, on_error: Callable[[], None] | None = None) -> PredictionCache:
    """Redis when ``settings.redis_url`` is set (``on_error`` is called on each failed round trip), else ``make_cache``.

    With Redis, ``settings.redis_near_cache_size`` entries (if above 0) are kept in the worker in front of it.

    Call it inside the running event loop (the app's lifespan): the Redis client binds its connections to that loop.
    """
    if settings.redis_url is None:
        return make_cache(settings.cache_size)
    from service.redis_cache import RedisCache

    redis = RedisCache(
        settings.redis_url,
        ttl_seconds=settings.redis_ttl_seconds,
        max_value_bytes=settings.redis_max_value_bytes,
        timeout_seconds=settings.redis_timeout_seconds,
        on_error=on_error,
    )
    if settings.redis_near_cache_size == 0:
        return redis
    return TieredCache(LRUCache(settings.redis_near_cache_size), redis)
