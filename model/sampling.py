"""Random architectures of the NAS-Bench-101 and DARTS cell spaces, drawn by the spaces' published sampling rules.

The tables here label only a few hundred cells of these spaces; label-free pre-training (``training.pretrain``)
learns their structure from many more unlabelled cells drawn here. NB101 follows NAS-Bench-101's ``random_spec``:
each upper-triangular edge of a 7-node matrix on with probability 1/2, uniform ops, redrawn until the pruned cell
is valid (connected, at most 9 edges). DARTS follows NAS-Bench-301 / DARTS: each intermediate state of the normal
and the reduce cell reads two distinct earlier states, each through a uniform op.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.errors import ArchitectureError
from model.ir import ArchGraph
from model.ops import INPUT, OUTPUT
from model.parsers.darts import DARTS_OPS, parse_darts
from model.parsers.nb101 import NB101_MAX_NODES, NB101_OPS, parse_nb101


def random_nb101(rng: np.random.Generator) -> ArchGraph:
    while True:
        matrix = np.triu(rng.integers(0, 2, (NB101_MAX_NODES, NB101_MAX_NODES)), 1)
        ops = [INPUT, *(NB101_OPS[i] for i in rng.integers(0, len(NB101_OPS), NB101_MAX_NODES - 2)), OUTPUT]
        try:
            return parse_nb101(matrix.tolist(), ops)
        except ArchitectureError:
            continue


def random_darts(rng: np.random.Generator) -> ArchGraph:
    cells = []
    for _ in ("normal", "reduce"):
        pairs = []
        for state in range(2, 6):
            for source in rng.choice(state, size=2, replace=False):
                pairs.append([DARTS_OPS[int(rng.integers(len(DARTS_OPS)))], int(source)])
        cells.append(pairs)
    return parse_darts(*cells)


SAMPLERS: dict[str, Callable[[np.random.Generator], ArchGraph]] = {"nb101": random_nb101, "darts": random_darts}


def sample_space(space: str, count: int, seed: int) -> list[ArchGraph]:
    """``count`` random cells of ``space`` (repeats possible, as in uniform sampling), reproducible from ``seed``."""
    if space not in SAMPLERS:
        raise KeyError(f"no sampler for space {space!r}; spaces: {', '.join(SAMPLERS)}")
    rng = np.random.default_rng(seed)
    return [SAMPLERS[space](rng) for _ in range(count)]
