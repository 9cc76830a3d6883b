"""Canonical order and key of every NB201 cell, precomputed, so a request for a cell never seen skips the search.

``model.canonical.canonicalize`` takes ~60 us for an 8-node cell, more than half of what the service spends on a cell
it has not seen before (``benchmarks/results/stage_profile.md``), and a NAS search asks mostly for cells it has not
seen. NB201 has 5^6 = 15,625 cells, so their canonical forms fit a 375 kB table: ``nb201_canonical.npz`` beside this
module holds, per cell (indexed by ``cell_index``), the canonical order of its 8-node IR and the 16 bytes of its key.
It is derived from ``canonicalize`` and checked against it for every cell by the tests; rebuild it with

    python -m model.nb201_canonical
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.canonical import Canonical, canonicalize
from model.parsers.nb201 import NB201_NUM_CELLS, NB201_OPS, nb201_graph

TABLE_PATH = Path(__file__).parent / "nb201_canonical.npz"
_CODE = {op: code for code, op in enumerate(NB201_OPS)}
KEY_BYTES = 16  # canonical keys are 32 hex digits


def cell_index(ops: Sequence[str]) -> int:
    """The cell's position in ``itertools.product(NB201_OPS, repeat=6)``: its six op codes as a base-5 number."""
    index = 0
    for op in ops:
        index = index * len(NB201_OPS) + _CODE[op]
    return index


def build_table() -> tuple[np.ndarray, np.ndarray]:
    """(orders (15625, 8) uint8, keys (15625, 16) uint8) of every cell, from ``canonicalize``."""
    orders = np.zeros((NB201_NUM_CELLS, 8), dtype=np.uint8)
    keys = np.zeros((NB201_NUM_CELLS, KEY_BYTES), dtype=np.uint8)
    for index, ops in enumerate(itertools.product(NB201_OPS, repeat=6)):
        canonical = canonicalize(nb201_graph(ops))
        orders[index] = canonical.order
        keys[index] = np.frombuffer(bytes.fromhex(canonical.key), dtype=np.uint8)
    return orders, keys


@lru_cache(maxsize=1)
def _table() -> tuple[list[tuple[int, ...]], list[str]]:
    with np.load(TABLE_PATH) as saved:
        orders, keys = saved["orders"], saved["keys"]
    return [tuple(int(i) for i in row) for row in orders], [row.tobytes().hex() for row in keys]


def preload() -> None:
    """Read the table now (~30 ms), so that the first NB201 request does not wait for it."""
    _table()


def canonical_nb201(ops: Sequence[str]) -> Canonical:
    """``canonicalize(nb201_graph(ops))`` read from the table (``ops``: the six edge ops, arch-string order)."""
    orders, keys = _table()
    index = cell_index(ops)
    return Canonical(order=orders[index], key=keys[index])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    args = parser.parse_args()
    orders, keys = build_table()
    np.savez_compressed(args.out, orders=orders, keys=keys)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(orders)} cells)")


if __name__ == "__main__":
    main()
