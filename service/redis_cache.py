"""Prediction cache in Redis (redis-py asyncio): one MGET per lookup, one pipeline of SETs per store, bounded waits.

Keys are ``archcast:<predictor>@<version>:<canonical key>``; values are the compact JSON of all targets of the predictor.
Redis being slow or down never fails a request: a failed or timed-out round trip answers "all missing" (or stores
nothing), calls ``on_error`` (the ``archcast_cache_errors_total`` counter) and is logged at most once per
``log_interval_seconds``. redis-py drops a connection that failed or was cancelled mid-command, so the next call opens a
fresh one: caching resumes by itself once Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from service.cache import Prediction

log = logging.getLogger("archcast.service.cache")

KEY_PREFIX = "archcast:"


class ThrottledLog:
    """Warnings at most once per ``interval`` seconds; the next one says how many were held back in between."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self._last: float | None = None
        self._held_back = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            self._held_back += 1
            return
        if self._held_back:
            message += f" ({self._held_back} more cache errors in the last {now - self._last:.0f} s not logged)"
        self.logger.warning(message)
        self._last = now
        self._held_back = 0


class RedisCache:
    """A ``PredictionCache`` in Redis; create it inside the event loop that will use it."""

    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: int,
        max_value_bytes: int,
        timeout_seconds: float,
        on_error: Callable[[], None] | None = None,
        log_interval_seconds: float = 60.0,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_value_bytes = max_value_bytes
        self.timeout_seconds = timeout_seconds
        self.errors = 0  # failed or timed-out round trips
        self.skipped = 0  # values not written for being over max_value_bytes
        self._on_error = on_error
        self._log = ThrottledLog(log, log_interval_seconds)
        self._failing = False
        # one immediate retry on a connection error covers a pooled connection that went stale (Redis restarted);
        # timeouts are not retried: asyncio.timeout bounds the whole call anyway
        retry = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
        self._client = Redis.from_url(
            url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds, retry=retry
        )

    async def get_many(self, keys: Sequence[str]) -> list[Prediction | None]:
        if not keys:
            return []
        try:
            async with asyncio.timeout(self.timeout_seconds):
                found = await self._client.mget([KEY_PREFIX + key for key in keys])
        except Exception as exc:  # noqa: BLE001 - any cache failure means "not cached", never a failed request
            self._failed("MGET", exc, "answering uncached")
            return [None] * len(keys)
        self._succeeded()
        return [_decode(value) for value in found]

    async def set_many(self, items: Mapping[str, Prediction]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in items.items():
            data = json.dumps(value, separators=(",", ":")).encode()
            if len(data) > self.max_value_bytes:
                self.skipped += 1
                continue
            pipe.set(KEY_PREFIX + key, data, ex=self.ttl_seconds or None)
        count = len(pipe)
        if not count:
            return
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a failed store only costs a later recomputation
            self._failed("SET", exc, f"{count} predictions not cached")
            return
        self._succeeded()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _failed(self, command: str, exc: Exception, consequence: str) -> None:
        self.errors += 1
        self._failing = True
        if self._on_error is not None:
            self._on_error()
        reason = f"timed out after {self.timeout_seconds} s" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        self._log.warning(f"Redis cache {command} failed ({reason}); {consequence}")

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.info("Redis cache reachable again")


def _decode(value: bytes | None) -> Prediction | None:
    """The cached targets, or None for a missing or unreadable value (then it is simply recomputed)."""
    if value is None:
        return None
    try:
        decoded = json.loads(value)
        # interned target names: the near cache then holds one copy of each name, not one per entry
        prediction = {sys.intern(str(name)): float(number) for name, number in decoded.items()}
    except (ValueError, TypeError, AttributeError):
        return None
    return prediction
