"""GoogLeNet / Inception-v1: multi-branch blocks (1x1 | 1x1->3x3 | 1x1->3x3 | pool->1x1) joined by concatenation."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import ClassifierHead, choose_resolution, conv_bn, num_classes

NAME = "inception"
# GoogLeNet blocks: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5 (as 3x3 in torchvision), pool proj; "M" = max-pool
GOOGLENET = [
    [64, 96, 128, 16, 32, 32],
    [128, 128, 192, 32, 96, 64],
    "M",
    [192, 96, 208, 16, 48, 64],
    [160, 112, 224, 24, 64, 64],
    [128, 128, 256, 24, 64, 64],
    [112, 144, 288, 32, 64, 64],
    [256, 160, 320, 32, 128, 128],
    "M",
    [256, 160, 320, 32, 128, 128],
    [384, 192, 384, 48, 128, 128],
]


class InceptionBlock(nn.Module):
    def __init__(self, c_in: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool: int, kernel5: int) -> None:
        super().__init__()
        self.b1 = conv_bn(c_in, c1, 1)
        self.b3 = nn.Sequential(conv_bn(c_in, r3, 1), conv_bn(r3, c3, 3))
        self.b5 = nn.Sequential(conv_bn(c_in, r5, 1), conv_bn(r5, c5, kernel5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(c_in, pool, 1))

    def forward(self, x):  # noqa: ANN001, ANN201
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


def build(spec: dict[str, Any]) -> nn.Module:
    s = spec["stem"]
    layers: list[nn.Module] = [
        conv_bn(3, s, 7, 2),
        nn.MaxPool2d(3, 2, 1),
        conv_bn(s, s, 1),
        conv_bn(s, 3 * s, 3),
        nn.MaxPool2d(3, 2, 1),
    ]
    c_in = 3 * s
    for block in spec["blocks"]:
        if block == "M":
            layers.append(nn.MaxPool2d(3, 2, 1))
            continue
        layers.append(InceptionBlock(c_in, *block, spec["kernel5"]))
        c_in = block[0] + block[2] + block[4] + block[5]
    return nn.Sequential(*layers, ClassifierHead(c_in, spec["num_classes"]))


def sample(rng: random.Random) -> dict[str, Any]:
    width = rng.choice([0.25, 0.375, 0.5, 0.75, 1.0])
    keep = [b for b in GOOGLENET if b == "M" or rng.random() < 0.75]
    blocks = [b if b == "M" else [max(8, int(c * width * rng.choice([0.75, 1.0, 1.25]))) for c in b] for b in keep]
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "stem": max(16, int(64 * width)),
        "blocks": blocks,
        "kernel5": rng.choice([3, 5]),
    }


def canonical() -> list[dict[str, Any]]:
    return [{"name": "googlenet", "resolution": 224, "num_classes": 1000, "stem": 64, "blocks": GOOGLENET, "kernel5": 3}]
