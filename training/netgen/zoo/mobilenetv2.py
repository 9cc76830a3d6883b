"""MobileNetV2: inverted residuals with linear bottlenecks, ReLU6; random width, depth, kernels and expansions."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import MobileNet, choose_resolution, make_divisible, num_classes

NAME = "mobilenetv2"
# expand, channels, repeats, stride (MobileNetV2 1.0)
BASE = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def _spec(width: float, stages: list[list], resolution: int, classes: int) -> dict[str, Any]:
    return {
        "resolution": resolution,
        "num_classes": classes,
        "stem": make_divisible(32 * width),
        "stages": stages,
        "last": make_divisible(1280 * max(1.0, width)),
    }


def sample(rng: random.Random) -> dict[str, Any]:
    width = rng.choice([0.35, 0.5, 0.75, 1.0, 1.25, 1.4])
    stages = []
    for i, (expand, channels, repeats, stride) in enumerate(BASE):
        e = expand if i == 0 else rng.choice([3, 4, 6])
        n = repeats if i in (0, 6) else max(1, repeats + rng.randint(-1, 1))
        stages.append([e, make_divisible(channels * width), n, stride, rng.choice([3, 5, 7]), 0.0, "relu6"])
    return _spec(width, stages, choose_resolution(rng), num_classes(rng))


def build(spec: dict[str, Any]) -> nn.Module:
    return MobileNet(spec)


def canonical() -> list[dict[str, Any]]:
    stages = [[e, c, n, s, 3, 0.0, "relu6"] for e, c, n, s in BASE]
    return [{**_spec(1.0, stages, 224, 1000), "name": "mobilenet_v2"}]
