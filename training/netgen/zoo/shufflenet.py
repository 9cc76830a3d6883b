"""ShuffleNetV2: channel split, a depthwise-separable branch, concatenation and channel shuffle (reshape/transpose)."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import ClassifierHead, choose_resolution, conv_bn, num_classes

NAME = "shufflenet"


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Unit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.stride = stride
        half = c_out // 2
        branch_in = c_in if stride > 1 else half
        if stride > 1:
            self.left = nn.Sequential(conv_bn(c_in, c_in, kernel, stride, c_in, act=None), conv_bn(c_in, half, 1))
        self.right = nn.Sequential(
            conv_bn(branch_in, half, 1), conv_bn(half, half, kernel, stride, half, act=None), conv_bn(half, half, 1)
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat([left, self.right(right)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return channel_shuffle(out)


def build(spec: dict[str, Any]) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c_in = 24
    for width, repeats in zip(spec["widths"], spec["repeats"], strict=True):
        for i in range(repeats):
            layers.append(Unit(c_in, width, 2 if i == 0 else 1, spec["kernel"]))
            c_in = width
    layers.append(conv_bn(c_in, spec["last"], 1))
    return nn.Sequential(*layers, ClassifierHead(spec["last"], spec["num_classes"]))


def sample(rng: random.Random) -> dict[str, Any]:
    widths = rng.choice([[48, 96, 192], [116, 232, 464], [176, 352, 704], [244, 488, 976], [64, 128, 256]])
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "widths": widths,
        "repeats": [rng.randint(2, 6), rng.randint(4, 10), rng.randint(2, 6)],
        "kernel": rng.choice([3, 5, 7]),
        "last": rng.choice([1024, 2048]) if widths[-1] > 500 else 1024,
    }


def canonical() -> list[dict[str, Any]]:
    return [
        {
            "name": "shufflenet_v2_x1_0",
            "resolution": 224,
            "num_classes": 1000,
            "widths": [116, 232, 464],
            "repeats": [4, 8, 4],
            "kernel": 3,
            "last": 1024,
        }
    ]
