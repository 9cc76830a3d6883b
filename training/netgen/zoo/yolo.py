"""YOLOv8-style one-stage detectors: a CSP backbone of C2f blocks (Split, bottlenecks, Concat) with an SPPF (chained
MaxPools), a PANet neck (nearest Resize + Concat up, strided conv + Concat down) and decoupled box / class heads on
three levels, flattened and concatenated into one output. Depth and width multiples as in the published n / s / m
scales, with per-stage jitter."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, conv_bn, make_divisible
from training.netgen.dense import upsample

NAME = "yolo"
BASE_DEPTHS = (3, 6, 6, 3)
BASE_WIDTHS = (64, 128, 256, 512, 1024)
BOX_CHANNELS = 64  # 4 sides x 16 distribution bins


class Bottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels, 3, act=act), conv_bn(channels, channels, 3, act=act))
        self.shortcut = shortcut

    def forward(self, x):  # noqa: ANN001, ANN201
        return x + self.body(x) if self.shortcut else self.body(x)


class C2f(nn.Module):
    """1x1 conv to 2h channels, split in two halves, ``n`` bottlenecks on the second, every output concatenated."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool, act: str) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.reduce = conv_bn(c_in, 2 * self.hidden, 1, act=act)
        self.blocks = nn.ModuleList([Bottleneck(self.hidden, shortcut, act) for _ in range(n)])
        self.merge = conv_bn((2 + n) * self.hidden, c_out, 1, act=act)

    def forward(self, x):  # noqa: ANN001, ANN201
        outs = list(self.reduce(x).split(self.hidden, 1))
        for block in self.blocks:
            outs.append(block(outs[-1]))
        return self.merge(torch.cat(outs, 1))


class SPPF(nn.Module):
    def __init__(self, channels: int, act: str) -> None:
        super().__init__()
        self.reduce = conv_bn(channels, channels // 2, 1, act=act)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.merge = conv_bn(channels * 2, channels, 1, act=act)

    def forward(self, x):  # noqa: ANN001, ANN201
        outs = [self.reduce(x)]
        for _ in range(3):
            outs.append(self.pool(outs[-1]))
        return self.merge(torch.cat(outs, 1))


class Yolo(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        act, depths = spec["act"], spec["depths"]
        w = [make_divisible(min(c, spec["max_channels"]) * spec["width"]) for c in BASE_WIDTHS]
        self.stem = nn.Sequential(
            conv_bn(3, w[0], 3, 2, act=act), conv_bn(w[0], w[1], 3, 2, act=act), C2f(w[1], w[1], depths[0], True, act)
        )
        self.p3 = nn.Sequential(conv_bn(w[1], w[2], 3, 2, act=act), C2f(w[2], w[2], depths[1], True, act))
        self.p4 = nn.Sequential(conv_bn(w[2], w[3], 3, 2, act=act), C2f(w[3], w[3], depths[2], True, act))
        self.p5 = nn.Sequential(conv_bn(w[3], w[4], 3, 2, act=act), C2f(w[4], w[4], depths[3], True, act), SPPF(w[4], act))
        neck = spec["neck_depth"]
        self.up = upsample(2, "nearest")
        self.top4 = C2f(w[4] + w[3], w[3], neck, False, act)
        self.top3 = C2f(w[3] + w[2], w[2], neck, False, act)
        self.down3 = conv_bn(w[2], w[2], 3, 2, act=act)
        self.bottom4 = C2f(w[2] + w[3], w[3], neck, False, act)
        self.down4 = conv_bn(w[3], w[3], 3, 2, act=act)
        self.bottom5 = C2f(w[3] + w[4], w[4], neck, False, act)
        box, cls = max(16, w[2] // 4, BOX_CHANNELS), max(w[2], min(spec["num_classes"], 100))
        self.box = nn.ModuleList([self._branch(c, box, BOX_CHANNELS, act) for c in (w[2], w[3], w[4])])
        self.cls = nn.ModuleList([self._branch(c, cls, spec["num_classes"], act) for c in (w[2], w[3], w[4])])

    @staticmethod
    def _branch(c_in: int, width: int, c_out: int, act: str) -> nn.Sequential:
        return nn.Sequential(conv_bn(c_in, width, 3, act=act), conv_bn(width, width, 3, act=act), nn.Conv2d(width, c_out, 1))

    def forward(self, x):  # noqa: ANN001, ANN201
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        t4 = self.top4(torch.cat([self.up(p5), p4], 1))
        n3 = self.top3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bottom4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bottom5(torch.cat([self.down4(n4), p5], 1))
        heads = zip(self.box, self.cls, (n3, n4, n5), strict=True)
        return torch.cat([torch.cat([box(f), cls(f)], 1).flatten(2) for box, cls, f in heads], 2)


def sample(rng: random.Random) -> dict[str, Any]:
    depth = rng.choice([0.33, 0.67, 1.0])
    return {
        "resolution": choose_resolution(rng, low=128),
        "num_classes": rng.choice([1, 20, 80]),
        "width": rng.choice([0.25, 0.375, 0.5, 0.75]),
        "max_channels": rng.choice([512, 768, 1024]),
        "depths": [max(1, round(d * depth) + rng.choice([-1, 0, 0, 1])) for d in BASE_DEPTHS],
        "neck_depth": max(1, round(3 * depth)),
        "act": rng.choice(["silu", "silu", "relu"]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return Yolo(spec)


def canonical() -> list[dict[str, Any]]:
    """Ultralytics YOLOv8 n / s / m (80 classes) at their published 640 x 640 and at 320 x 320."""
    scales = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.5, 1024), "m": (0.67, 0.75, 768)}
    out = []
    for resolution, names in ((640, "ns"), (320, "nsm")):
        for name in names:
            depth, width, max_channels = scales[name]
            out.append({
                "name": f"yolov8{name}_{resolution}", "resolution": resolution, "num_classes": 80, "width": width,
                "max_channels": max_channels, "depths": [max(1, round(d * depth)) for d in BASE_DEPTHS],
                "neck_depth": max(1, round(3 * depth)), "act": "silu",
            })  # fmt: skip
    return out
