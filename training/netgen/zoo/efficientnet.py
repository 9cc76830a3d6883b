"""EfficientNet: MBConv blocks with SE (ratio 0.25 of the block input) and SiLU; compound width/depth scaling."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import MobileNet, make_divisible, num_classes, scale_stages

NAME = "efficientnet"
# EfficientNet-B0: expand, channels, repeats, stride, kernel, se ratio, act
B0 = [
    [1, 16, 1, 1, 3, 0.25, "silu"],
    [6, 24, 2, 2, 3, 0.25, "silu"],
    [6, 40, 2, 2, 5, 0.25, "silu"],
    [6, 80, 3, 2, 3, 0.25, "silu"],
    [6, 112, 3, 1, 5, 0.25, "silu"],
    [6, 192, 4, 2, 5, 0.25, "silu"],
    [6, 320, 1, 1, 3, 0.25, "silu"],
]


def _spec(width: float, depth: float, stages: list[list], resolution: int, classes: int) -> dict[str, Any]:
    return {
        "resolution": resolution,
        "num_classes": classes,
        "stem": make_divisible(32 * width),
        "stem_act": "silu",
        "stages": scale_stages(stages, width, depth),
        "last": make_divisible(1280 * width),
        "head_act": "silu",
        "se_on_input": True,
    }


def sample(rng: random.Random) -> dict[str, Any]:
    width, depth = rng.choice([(0.5, 0.6), (0.75, 0.8), (1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4)])
    stages = [
        [e if i == 0 else rng.choice([4, 6]), c, n, s, rng.choice([3, 5]), rng.choice([0.0, 0.25]), "silu"]
        for i, (e, c, n, s, k, se, a) in enumerate(B0)
    ]
    return _spec(width, depth, stages, rng.randrange(96, 257, 32), num_classes(rng))


def build(spec: dict[str, Any]) -> nn.Module:
    return MobileNet(spec)


def canonical() -> list[dict[str, Any]]:
    return [{**_spec(1.0, 1.0, B0, 224, 1000), "name": "efficientnet_b0"}]
