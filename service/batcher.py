"""Dynamic batching: the cache misses of concurrent requests share one onnxruntime run per predictor.

Each predictor gets one consumer task. A request submits its missing graphs as one work item and awaits a future.
The consumer takes the oldest item, waits at most ``wait_ms`` after it was queued for others to join (or until
``max_batch`` architectures are queued), tokenizes the gathered graphs together (padded to the longest), runs the
session once in a worker thread and resolves each item's future with its rows. Items queued while a run is in
progress go into the next run without further waiting, so the batch size grows with the load by itself.

The wait is cut short when no other predict request of the app is still on its way to a batcher (being parsed or
looked up in the cache): a lone sequential client then pays no batching delay (``Batchers.arrive``).

Bounded: more than ``queue_max`` waiting architectures answers 503 ``overloaded``; a failed run fails every item of
that run (an onnxruntime fault is 503 ``inference_failed``, see ``Predictor.run``); stopping fails what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from model.ir import ArchGraph
from service.cache import Prediction
from service.errors import ServiceError
from service.metrics import ServiceMetrics
from service.pipeline import compute
from service.predictor import Predictor

log = logging.getLogger("archcast.service")
RETRY_AFTER = {"Retry-After": "1"}

Compute = Callable[[Predictor, list[ArchGraph], ServiceMetrics | None], list[Prediction]]


@dataclass
class _Item:
    """One request's cache misses: cache keys, graphs in canonical order and the future its rows go to."""

    keys: Sequence[str]
    graphs: Sequence[ArchGraph]
    future: asyncio.Future[list[Prediction]]
    queued_at: float


class Batcher:
    """The dynamic batcher of one predictor; ``start`` and ``stop`` it inside the running event loop."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        wait_ms: float = 2.0,
        max_batch: int = 4096,
        queue_max: int = 65536,
        metrics: ServiceMetrics | None = None,
        compute_fn: Compute = compute,
        arriving: Callable[[], int] | None = None,
    ) -> None:
        """``arriving`` counts requests that may still join a batch; without it every batch waits the full window."""
        self.predictor = predictor
        self.wait_seconds = wait_ms / 1000.0
        self.max_batch = max_batch
        self.queue_max = queue_max
        self.metrics = metrics
        self._compute = compute_fn
        self._arriving = arriving
        self._queue: deque[_Item] = deque()
        self._queued = 0  # architectures waiting in the queue (not those of the run in progress)
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        """Architectures waiting for a run."""
        return self._queued

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume(), name=f"batcher-{self.predictor.name}")
            self._task.add_done_callback(self._on_consumer_done)

    async def stop(self) -> None:
        """Stop the consumer; requests still waiting get 503 ``shutting_down``."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail(self._drain(), self._shutting_down())

    def wake(self) -> None:
        """Let the consumer re-check its wait (a request stopped being on its way)."""
        self._arrived.set()

    async def submit(
        self, keys: Sequence[str], graphs: Sequence[ArchGraph], arrival: Arrival | None = None
    ) -> list[Prediction]:
        """Every target of each graph (key order), from a run shared with concurrent requests.

        ``arrival`` (the request's ticket from ``Batchers.arrive``) is handed in once the item is queued.
        """
        if self._stopping or self._task is None or self._task.done():
            raise ServiceError(503, "not_ready", f"the batcher of predictor {self.predictor.name!r} is not running", RETRY_AFTER)
        count = len(graphs)
        if self._queued + count > self.queue_max:
            raise ServiceError(
                503,
                "overloaded",
                f"predictor {self.predictor.name!r} has {self._queued} architectures queued; this request's {count} "
                f"would exceed the limit of {self.queue_max} (ARCHCAST_BATCH_QUEUE_MAX); retry later",
                RETRY_AFTER,
            )
        future: asyncio.Future[list[Prediction]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(keys, graphs, future, time.perf_counter()))
        self._queued += count
        self._arrived.set()
        if arrival is not None:
            arrival.leave()
        return await future  # a cancelled caller cancels the future; the consumer then skips or discards it

    async def _consume(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            await self._gather()
            items = self._take()
            if items:
                await self._run(items)

    async def _gather(self) -> None:
        """Wait until ``max_batch`` architectures are queued or ``wait_ms`` after the oldest item was queued."""
        deadline = self._queue[0].queued_at + self.wait_seconds
        while self._queued < self.max_batch:
            if self._arriving is not None and self._arriving() == 0:
                return  # nobody else is on the way: waiting would only add latency
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        """Whole items from the front of the queue, up to ``max_batch`` architectures (at least one item)."""
        items: list[_Item] = []
        total = 0
        while self._queue:
            item = self._queue[0]
            count = len(item.graphs)
            if not item.future.done() and items and total + count > self.max_batch:
                break
            self._queue.popleft()
            self._queued -= count
            if item.future.done():  # its request was cancelled while waiting
                continue
            items.append(item)
            total += count
        return items

    async def _run(self, items: list[_Item]) -> None:
        started = time.perf_counter()
        if self.metrics is not None:
            for item in items:
                self.metrics.queue_wait_seconds.observe(started - item.queued_at)
        unique: dict[str, ArchGraph] = {}
        for item in items:
            for key, graph in zip(item.keys, item.graphs, strict=True):
                unique.setdefault(key, graph)  # the same architecture missed by concurrent requests runs once
        try:
            rows = await run_in_threadpool(self._compute, self.predictor, list(unique.values()), self.metrics)
        except asyncio.CancelledError:
            self._fail(items, self._shutting_down())
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter of this run gets the error, the consumer lives on
            if not isinstance(exc, ServiceError):
                log.error("batched run of predictor %s failed: %r", self.predictor.name, exc)
            self._fail(items, exc)
            return
        by_key = dict(zip(unique, rows, strict=True))
        for item in items:
            if not item.future.done():
                item.future.set_result([by_key[key] for key in item.keys])

    def _drain(self) -> list[_Item]:
        items = list(self._queue)
        self._queue.clear()
        self._queued = 0
        return items

    def _shutting_down(self) -> ServiceError:
        return ServiceError(503, "shutting_down", "the service is shutting down; retry on another replica", RETRY_AFTER)

    @staticmethod
    def _fail(items: Iterable[_Item], exc: BaseException) -> None:
        for item in items:
            if not item.future.done():
                # a ServiceError is copied per waiter; anything else becomes the usual 500 of each request
                error = ServiceError(exc.status, exc.code, exc.message, exc.headers) if isinstance(exc, ServiceError) else exc
                item.future.set_exception(error)

    def _on_consumer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("batcher of predictor %s stopped: %r", self.predictor.name, task.exception())
        self._fail(self._drain(), ServiceError(503, "not_ready", "the batcher stopped; retry later", RETRY_AFTER))


class Arrival:
    """A predict request on its way to a batcher; ``leave`` (idempotent) when it queued its item or needs none."""

    def __init__(self, batchers: Batchers) -> None:
        self._batchers = batchers
        self._left = False

    def leave(self) -> None:
        if not self._left:
            self._left = True
            self._batchers._left()


class Batchers(Mapping[str, Batcher]):
    """The started batchers of an app by predictor name, and how many predict requests are on their way to them."""

    def __init__(self) -> None:
        self._by_name: dict[str, Batcher] = {}
        self.arriving = 0

    def __getitem__(self, name: str) -> Batcher:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @classmethod
    def start(
        cls, predictors: Iterable[Predictor], *, wait_ms: float, max_batch: int, queue_max: int, metrics: ServiceMetrics | None
    ) -> Batchers:
        """One started batcher per predictor (call inside the running event loop)."""
        pool = cls()
        for predictor in predictors:
            batcher = Batcher(
                predictor, wait_ms=wait_ms, max_batch=max_batch, queue_max=queue_max, metrics=metrics,
                arriving=lambda: pool.arriving,
            )
            batcher.start()
            pool._by_name[predictor.name] = batcher
        return pool

    async def stop(self) -> None:
        for batcher in self._by_name.values():
            await batcher.stop()

    @contextlib.contextmanager
    def arrive(self) -> Iterator[Arrival]:
        """Count a predict request as on its way until it queues its item (``Batcher.submit``) or finishes."""
        self.arriving += 1
        arrival = Arrival(self)
        try:
            yield arrival
        finally:
            arrival.leave()

    def _left(self) -> None:
        self.arriving -= 1
        if self.arriving == 0:
            for batcher in self._by_name.values():
                batcher.wake()
