"""MnasNet (A1/B1 layouts): separable-conv first block, MBConv stages with 3x3/5x5 kernels, SE in A1, ReLU."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import MobileNet, choose_resolution, make_divisible, num_classes, scale_stages

NAME = "mnasnet"
# MnasNet-B1 1.0 (torchvision mnasnet1_0): expand, channels, repeats, stride, kernel, se, act
B1 = [
    [1, 16, 1, 1, 3, 0.0, "relu"],
    [3, 24, 3, 2, 3, 0.0, "relu"],
    [3, 40, 3, 2, 5, 0.0, "relu"],
    [6, 80, 3, 2, 5, 0.0, "relu"],
    [6, 96, 2, 1, 3, 0.0, "relu"],
    [6, 192, 4, 2, 5, 0.0, "relu"],
    [6, 320, 1, 1, 3, 0.0, "relu"],
]
A1 = [
    [1, 16, 1, 1, 3, 0.0, "relu"],
    [6, 24, 2, 2, 3, 0.0, "relu"],
    [3, 40, 3, 2, 5, 0.25, "relu"],
    [6, 80, 4, 2, 3, 0.0, "relu"],
    [6, 112, 2, 1, 3, 0.25, "relu"],
    [6, 160, 3, 2, 5, 0.25, "relu"],
    [6, 320, 1, 1, 3, 0.0, "relu"],
]


def _spec(width: float, depth: float, stages: list[list], resolution: int, classes: int) -> dict[str, Any]:
    return {
        "resolution": resolution,
        "num_classes": classes,
        "stem": make_divisible(32 * width),
        "stem_act": "relu",
        "stages": scale_stages(stages, width, depth),
        "last": 1280,
        "head_act": "relu",
        "se_gate": "sigmoid",
    }


def sample(rng: random.Random) -> dict[str, Any]:
    base = A1 if rng.random() < 0.5 else B1
    stages = [
        [e if i == 0 else rng.choice([3, 6]), c, n, s, rng.choice([3, 5]), se, a] for i, (e, c, n, s, k, se, a) in enumerate(base)
    ]
    width = rng.choice([0.5, 0.75, 1.0, 1.3])
    return _spec(width, rng.choice([0.75, 1.0, 1.25]), stages, choose_resolution(rng), num_classes(rng))


def build(spec: dict[str, Any]) -> nn.Module:
    return MobileNet(spec)


def canonical() -> list[dict[str, Any]]:
    return [{**_spec(1.0, 1.0, B1, 224, 1000), "name": "mnasnet1_0"}, {**_spec(1.0, 1.0, A1, 224, 1000), "name": "mnasnet_a1"}]
