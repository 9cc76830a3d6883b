"""MobileNetV3 (Large/Small layouts): inverted residuals with SE (hard-sigmoid gate) and hard-swish."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import MobileNet, choose_resolution, make_divisible, num_classes

NAME = "mobilenetv3"
# expand, channels, repeats, stride, kernel, se, act (MobileNetV3-Large / -Small 1.0, blocks grouped into stages)
LARGE = [
    [1, 16, 1, 1, 3, 0, "relu"],
    [4, 24, 1, 2, 3, 0, "relu"],
    [3, 24, 1, 1, 3, 0, "relu"],
    [3, 40, 3, 2, 5, 1, "relu"],
    [6, 80, 1, 2, 3, 0, "hswish"],
    [2.5, 80, 1, 1, 3, 0, "hswish"],
    [2.3, 80, 2, 1, 3, 0, "hswish"],
    [6, 112, 2, 1, 3, 1, "hswish"],
    [6, 160, 3, 2, 5, 1, "hswish"],
]
SMALL = [
    [1, 16, 1, 2, 3, 1, "relu"],
    [4.5, 24, 1, 2, 3, 0, "relu"],
    [3.67, 24, 1, 1, 3, 0, "relu"],
    [4, 40, 1, 2, 5, 1, "hswish"],
    [6, 40, 2, 1, 5, 1, "hswish"],
    [3, 48, 2, 1, 5, 1, "hswish"],
    [6, 96, 3, 2, 5, 1, "hswish"],
]


def _spec(layout: list[list], width: float, large: bool, resolution: int, classes: int) -> dict[str, Any]:
    stages = [[e, make_divisible(c * width), n, s, k, 0.25 if se else 0.0, a] for e, c, n, s, k, se, a in layout]
    last_conv = make_divisible(stages[-1][1] * 6)
    return {
        "resolution": resolution,
        "num_classes": classes,
        "stem": 16,
        "stem_act": "hswish",
        "stages": stages,
        "last": last_conv,
        "head_act": "hswish",
        "hidden": 1280 if large else 1024,
        "se_gate": "hsigmoid",
    }


def sample(rng: random.Random) -> dict[str, Any]:
    large = rng.random() < 0.5
    layout = []
    for e, c, n, s, _k, _se, a in LARGE if large else SMALL:
        layout.append(
            [
                rng.choice([e, 3, 4, 6]) if e != 1 else 1,
                c,
                max(1, n + rng.randint(-1, 1)),
                s,
                rng.choice([3, 5, 7]),
                int(rng.random() < 0.5),
                a,
            ]
        )
    return _spec(layout, rng.choice([0.5, 0.75, 1.0, 1.25]), large, choose_resolution(rng), num_classes(rng))


def build(spec: dict[str, Any]) -> nn.Module:
    return MobileNet(spec)


def canonical() -> list[dict[str, Any]]:
    return [
        {**_spec(LARGE, 1.0, True, 224, 1000), "name": "mobilenet_v3_large"},
        {**_spec(SMALL, 1.0, False, 224, 1000), "name": "mobilenet_v3_small"},
    ]
