"""DenseNet-BC: dense blocks (each layer BN-ReLU-1x1 (4k) -> BN-ReLU-3x3 (k), concatenated) and 0.5 transitions."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, num_classes

NAME = "densenet"


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, bottleneck * growth, 1, bias=False),
            nn.BatchNorm2d(bottleneck * growth),
            nn.ReLU(),
            nn.Conv2d(bottleneck * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        return torch.cat([x, self.body(x)], 1)


def build(spec: dict[str, Any]) -> nn.Module:
    k, c = spec["growth"], spec["stem"]
    layers: list[nn.Module] = [nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    for i, n in enumerate(spec["blocks"]):
        for _ in range(n):
            layers.append(DenseLayer(c, k, spec["bottleneck"]))
            c += k
        if i < len(spec["blocks"]) - 1:
            out = int(c * spec["compression"])
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, out, 1, bias=False), nn.AvgPool2d(2, 2)]
            c = out
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, spec["num_classes"])]
    return nn.Sequential(*layers)


def sample(rng: random.Random) -> dict[str, Any]:
    growth = rng.choice([8, 12, 16, 24, 32])
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "growth": growth,
        "stem": 2 * growth,
        "blocks": [rng.randint(2, 6), rng.randint(2, 10), rng.randint(2, 16), rng.randint(2, 10)],
        "bottleneck": 4,
        "compression": 0.5,
    }


def canonical() -> list[dict[str, Any]]:
    return [
        {
            "name": "densenet121",
            "resolution": 224,
            "num_classes": 1000,
            "growth": 32,
            "stem": 64,
            "blocks": [6, 12, 24, 16],
            "bottleneck": 4,
            "compression": 0.5,
        }
    ]
