"""Which predict requests are planned on the event loop (a few fixed-size cells) and which in the thread pool."""

from __future__ import annotations

import pytest

from service.pipeline import INLINE_PLAN_ARCHITECTURES, plans_inline
from service.schemas import PredictRequest

CELL = {"space": "nb201", "arch": "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"}
OFA = {"space": "ofa", "ks": [3] * 20, "e": [4] * 20, "d": [4] * 5, "r": 224}
GRAPH = {"space": "graph", "nodes": ["input", "conv3x3", "output"], "edges": [[0, 1], [1, 2]]}


def request(*architectures: dict) -> PredictRequest:
    return PredictRequest.model_validate({"architectures": list(architectures)})


def test_a_few_fixed_size_cells_are_planned_inline() -> None:
    assert plans_inline(request(CELL))
    assert plans_inline(request(*[CELL] * INLINE_PLAN_ARCHITECTURES))
    assert plans_inline(request(CELL, OFA))


@pytest.mark.parametrize(
    "architectures",
    [
        [CELL] * (INLINE_PLAN_ARCHITECTURES + 1),  # a larger batch
        [GRAPH],  # a generic graph may have up to max_nodes nodes
        [CELL, {"space": "nb201", "index": 7}],  # an index reads the NB201 table, loaded from disk on first use
    ],
)
def test_larger_or_file_reading_requests_go_to_the_thread_pool(architectures: list[dict]) -> None:
    assert not plans_inline(request(*architectures))
