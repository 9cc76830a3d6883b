"""RegNetX / RegNetY: stages of group-conv bottleneck blocks whose widths follow the quantised linear rule; SE in Y."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from torch import nn

from training.netgen.blocks import ClassifierHead, SqueezeExcite, choose_resolution, conv_bn, num_classes

NAME = "regnet"


def stage_widths(w0: int, wa: float, wm: float, depth: int, group_width: int) -> list[tuple[int, int]]:
    """(width, blocks) per stage from the RegNet rule u_j = w0 + wa * j, quantised to w0 * wm^round(log(u_j/w0)/log(wm))."""
    u = w0 + wa * np.arange(depth)
    s = np.round(np.log(u / w0) / np.log(wm))
    widths = (np.round(w0 * np.power(wm, s) / 8) * 8).astype(int)
    stages: list[tuple[int, int]] = []
    for w in widths:
        g = min(group_width, int(w))
        w = int(round(w / g) * g)
        if stages and stages[-1][0] == w:
            stages[-1] = (w, stages[-1][1] + 1)
        else:
            stages.append((w, 1))
    return stages


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, group_width: int, se: bool) -> None:
        super().__init__()
        groups = max(1, c_out // min(group_width, c_out))
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, 1),
            conv_bn(c_out, c_out, 3, stride, groups),
            SqueezeExcite(c_out, c_in // 4) if se else nn.Identity(),
            conv_bn(c_out, c_out, 1, act=None),
        )
        self.skip = conv_bn(c_in, c_out, 1, stride, act=None) if stride != 1 or c_in != c_out else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.act(self.body(x) + self.skip(x))


def build(spec: dict[str, Any]) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
    c_in = 32
    for width, blocks in stage_widths(spec["w0"], spec["wa"], spec["wm"], spec["depth"], spec["group_width"]):
        for i in range(blocks):
            layers.append(Block(c_in, width, 2 if i == 0 else 1, spec["group_width"], spec["se"]))
            c_in = width
    return nn.Sequential(*layers, ClassifierHead(c_in, spec["num_classes"]))


def sample(rng: random.Random) -> dict[str, Any]:
    while True:
        spec = {
            "resolution": choose_resolution(rng),
            "num_classes": num_classes(rng),
            "w0": rng.choice([16, 24, 32, 48, 56, 80]),
            "wa": round(rng.uniform(8, 40), 2),
            "wm": round(rng.uniform(2.0, 2.8), 2),
            "depth": rng.randint(8, 22),
            "group_width": rng.choice([8, 16, 24, 32, 48]),
            "se": rng.random() < 0.5,
        }
        if len(stage_widths(spec["w0"], spec["wa"], spec["wm"], spec["depth"], spec["group_width"])) <= 5:
            return spec


def canonical() -> list[dict[str, Any]]:
    return [
        {
            "name": "regnet_x_400mf",
            "resolution": 224,
            "num_classes": 1000,
            "w0": 24,
            "wa": 24.48,
            "wm": 2.54,
            "depth": 22,
            "group_width": 16,
            "se": False,
        },
        {
            "name": "regnet_y_800mf",
            "resolution": 224,
            "num_classes": 1000,
            "w0": 56,
            "wa": 38.84,
            "wm": 2.4,
            "depth": 14,
            "group_width": 16,
            "se": True,
        },
    ]
