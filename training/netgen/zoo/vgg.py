"""VGG with BatchNorm: stacks of 3x3 convolutions separated by max-pooling, a (slimmed) classifier head."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import ClassifierHead, choose_resolution, conv_bn, num_classes

NAME = "vgg"


def build(spec: dict[str, Any]) -> nn.Module:
    layers: list[nn.Module] = []
    c_in = 3
    for stage, convs in enumerate(spec["convs"]):
        c_out = min(spec["base_width"] * 2**stage, spec["max_width"])
        for _ in range(convs):
            layers.append(conv_bn(c_in, c_out, spec["kernel"]))
            c_in = c_out
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, ClassifierHead(c_in, spec["num_classes"], hidden=spec["hidden"]))


def sample(rng: random.Random) -> dict[str, Any]:
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "convs": [rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 3)],
        "base_width": rng.choice([8, 12, 16, 24, 32]),
        "max_width": rng.choice([128, 256, 512]),
        "kernel": 3,
        "hidden": rng.choice([0, 256, 1024]),
    }


def canonical() -> list[dict[str, Any]]:
    common = {"resolution": 224, "num_classes": 1000, "base_width": 64, "max_width": 512, "kernel": 3, "hidden": 4096}
    return [{**common, "name": "vgg11_bn", "convs": [1, 1, 2, 2, 2]}, {**common, "name": "vgg16_bn", "convs": [2, 2, 3, 3, 3]}]
