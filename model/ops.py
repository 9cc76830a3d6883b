"""The operation vocabulary shared by all cell spaces: one stable integer code per op name.

Codes are append-only: a new op gets the next free code, so tokens of existing architectures never change.
"""

from __future__ import annotations

from model.errors import ArchitectureError

INPUT = "input"
OUTPUT = "output"

OP_NAMES: tuple[str, ...] = (
    INPUT,
    OUTPUT,
    # NAS-Bench-201
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
    # NAS-Bench-101
    "conv1x1-bn-relu",
    "conv3x3-bn-relu",
    "maxpool3x3",
    # DARTS
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "add",
    "concat",
    # FBNet (HELP's table): the 9 layer choices, in op_idx order
    "fbnet_k3_e1",
    "fbnet_k3_e1_g2",
    "fbnet_k3_e3",
    "fbnet_k3_e6",
    "fbnet_k5_e1",
    "fbnet_k5_e1_g2",
    "fbnet_k5_e3",
    "fbnet_k5_e6",
    "fbnet_skip",
    # OFA MobileNetV3 (HELP's table): active slots (kernel outer, expansion inner), inactive slot, input resolutions
    "ofa_k3_e3",
    "ofa_k3_e4",
    "ofa_k3_e6",
    "ofa_k5_e3",
    "ofa_k5_e4",
    "ofa_k5_e6",
    "ofa_k7_e3",
    "ofa_k7_e4",
    "ofa_k7_e6",
    "ofa_skip",
    *(f"ofa_res_{r}" for r in range(128, 225, 4)),  # consecutive codes, smooth in resolution
)

OP_CODES: dict[str, int] = {name: code for code, name in enumerate(OP_NAMES)}
VOCAB_SIZE = 64  # capacity of the op code; len(OP_NAMES) must stay below it
assert len(OP_NAMES) < VOCAB_SIZE, f"{len(OP_NAMES)} op names exceed the op code capacity {VOCAB_SIZE}"
assert len(OP_CODES) == len(OP_NAMES), "op names must be unique"


def op_code(name: str) -> int:
    """Integer code of an op name, or an ``unknown_op`` error listing the known ones."""
    try:
        return OP_CODES[name]
    except KeyError:
        raise ArchitectureError("unknown_op", f"unknown operation {name!r}; known operations: {', '.join(OP_NAMES)}") from None
