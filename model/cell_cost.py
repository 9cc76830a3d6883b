"""FLOPs and parameters of a NAS-Bench-201 network from its cell IR (the fixed NB201 macro skeleton).

The NB201 network stacks 5 cells at each of 3 stages (C = 16, 32, 64 channels at 32x32, 16x16, 8x8 pixels) between a
3x3 stem and two residual reduction blocks. An op counts only when it lies on a path from the cell input to the cell
output (``none`` cuts paths). Convolutions are ReLU-Conv-BN (2 FLOPs per multiply-accumulate, BN folded); 3x3 average
pooling counts 9 FLOPs per output element. The skeleton's fixed parts (stem, reductions, classifier) are added so
totals are comparable to the published ones, though only the cell part varies across the space.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.flow import live_nodes
from model.ir import ArchGraph

STAGES = ((16, 32 * 32), (32, 16 * 16), (64, 8 * 8))  # (channels, pixels)
CELLS_PER_STAGE = 5
NUM_CLASSES = 10


@dataclass(frozen=True)
class CellCost:
    flops: float
    params: float


def _op_cost(op: str, channels: int, pixels: int) -> tuple[float, float]:
    if op == "nor_conv_3x3":
        return 2.0 * 9 * channels * channels * pixels, 9.0 * channels * channels + 2 * channels
    if op == "nor_conv_1x1":
        return 2.0 * channels * channels * pixels, 1.0 * channels * channels + 2 * channels
    if op == "avg_pool_3x3":
        return 9.0 * channels * pixels, 0.0
    return 0.0, 0.0  # skip_connect, input, output


def _skeleton() -> tuple[float, float]:
    """Stem (3x3, 3->16 at 32x32), two residual reduction blocks, global pool and classifier."""
    flops = 2.0 * 9 * 3 * 16 * 32 * 32
    params = 9.0 * 3 * 16 + 2 * 16
    for c_in, c_out, pixels in ((16, 32, 16 * 16), (32, 64, 8 * 8)):
        flops += 2.0 * 9 * c_in * c_out * pixels + 2.0 * 9 * c_out * c_out * pixels + 2.0 * c_in * c_out * pixels
        params += 9.0 * c_in * c_out + 9.0 * c_out * c_out + c_in * c_out + 6 * c_out
    return flops + 2.0 * 64 * NUM_CLASSES, params + 64 * NUM_CLASSES + NUM_CLASSES


def nb201_cost(graph: ArchGraph) -> CellCost:
    """Whole-network FLOPs and parameters of an NB201 cell graph (8 nodes, input first, output last)."""
    active = live_nodes(graph)
    flops, params = _skeleton()
    for channels, pixels in STAGES:
        for node, on in zip(graph.nodes, active, strict=True):
            if on:
                f, p = _op_cost(node.op, channels, pixels)
                flops += CELLS_PER_STAGE * f
                params += CELLS_PER_STAGE * p
    return CellCost(flops=flops, params=params)
