"""The garbage collector of a serving process: what start-up loaded is frozen out of its reach, and the youngest
generation is collected every ``GEN0_THRESHOLD`` allocations instead of 700.

Why: under 64 concurrent clients the objects of requests in flight survive young collections, reach the oldest
generation and trigger full collections that scan everything start-up loaded (modules, predictor cards, ONNX
protos): 21 in ~40 s at ~600 requests/s, median 68 ms, max 134 ms. Measured on 2 CPUs (``docs/results.md``, session 51): p99 at
~600 requests/s 75-106 ms with Python's defaults, 13-14 ms frozen with these thresholds, 9-11 ms with no collector.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 10_000
OLDER_THRESHOLDS = (10, 10)


@contextmanager
def serving_gc(enabled: bool = True) -> Iterator[None]:
    """Collect, freeze what exists and raise the young threshold for the block; undo both after it (an app's
    lifespan: a test process that starts many apps gets their objects back to collect)."""
    if not enabled:
        yield
        return
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *OLDER_THRESHOLDS)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)
