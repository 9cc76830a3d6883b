"""SqueezeNet (1.0/1.1 layouts): Fire modules (1x1 squeeze, parallel 1x1/3x3 expand, concat) and max-pooling."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, num_classes

NAME = "squeezenet"


class Fire(nn.Module):
    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c_in, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):  # noqa: ANN001, ANN201
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def build(spec: dict[str, Any]) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, spec["stem"], spec["stem_kernel"], 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
    c_in = spec["stem"]
    for i, (squeeze, expand) in enumerate(spec["fires"]):
        if i in spec["pool_after"]:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        layers.append(Fire(c_in, squeeze, expand))
        c_in = 2 * expand
    head = [nn.Dropout(0.0), nn.Conv2d(c_in, spec["num_classes"], 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, *head)


def sample(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(4, 10)
    width = rng.choice([0.5, 0.75, 1.0, 1.5, 2.0])
    fires = []
    for i in range(n):
        squeeze = int((16 + 16 * (i // 2)) * width)
        fires.append([max(8, squeeze), max(16, int(squeeze * rng.choice([3, 4, 6])))])
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "stem": int(rng.choice([64, 96]) * width),
        "stem_kernel": rng.choice([3, 7]),
        "fires": fires,
        "pool_after": sorted(rng.sample(range(1, n), min(2, n - 1))),
    }


def canonical() -> list[dict[str, Any]]:
    fires = [[16, 64], [16, 64], [32, 128], [32, 128], [48, 192], [48, 192], [64, 256], [64, 256]]
    return [
        {
            "name": "squeezenet1_1",
            "resolution": 224,
            "num_classes": 1000,
            "stem": 64,
            "stem_kernel": 3,
            "fires": fires,
            "pool_after": [2, 4],
        }
    ]
