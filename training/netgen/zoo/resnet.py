"""ResNet and ResNeXt: basic or bottleneck residual blocks, grouped 3x3 convolutions (cardinality), optional SE."""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import ClassifierHead, SqueezeExcite, choose_resolution, conv_bn, num_classes

NAME = "resnet"


class Block(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, grouped 3x3, 1x1) residual block; the strided 3x3 may be dilated."""

    def __init__(
        self, c_in: int, width: int, c_out: int, stride: int, bottleneck: bool, groups: int, se: bool, dilation: int = 1
    ) -> None:
        super().__init__()
        if bottleneck:
            self.body = nn.Sequential(
                conv_bn(c_in, width, 1),
                conv_bn(width, width, 3, stride, groups, dilation=dilation),
                conv_bn(width, c_out, 1, act=None),
            )
        else:
            self.body = nn.Sequential(
                conv_bn(c_in, c_out, 3, stride, dilation=dilation), conv_bn(c_out, c_out, 3, act=None)
            )
        self.se = SqueezeExcite(c_out, c_out // 16) if se else nn.Identity()
        self.skip = conv_bn(c_in, c_out, 1, stride, act=None) if stride != 1 or c_in != c_out else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.act(self.se(self.body(x)) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        base, bottleneck = spec["base_width"], spec["bottleneck"]
        self.stem = nn.Sequential(conv_bn(3, base, spec["stem_kernel"], 2), nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        c_in = base
        for stage, depth in enumerate(spec["depths"]):
            planes = base * 2**stage
            c_out = planes * 4 if bottleneck else planes
            width = max(1, planes * spec["width_per_group"] // 64) * spec["groups"] if bottleneck else planes
            for i in range(depth):
                stride = 2 if i == 0 and stage > 0 else 1
                layers.append(Block(c_in, width, c_out, stride, bottleneck, spec["groups"], spec["se"]))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.head = ClassifierHead(c_in, spec["num_classes"])

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.head(self.layers(self.stem(x)))


def sample(rng: random.Random) -> dict[str, Any]:
    bottleneck = rng.random() < 0.5
    groups, wpg = (1, 64)
    if bottleneck and rng.random() < 0.5:
        groups, wpg = rng.choice([(8, 8), (16, 4), (32, 4), (32, 8), (64, 4)])
    max_depth = 6 if bottleneck else 4
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "bottleneck": bottleneck,
        "depths": [rng.randint(1, max_depth) for _ in range(4)],
        "base_width": rng.choice([16, 24, 32, 48, 64]),
        "stem_kernel": rng.choice([3, 5, 7]),
        "groups": groups,
        "width_per_group": wpg,
        "se": rng.random() < 0.25,
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return ResNet(spec)


def canonical() -> list[dict[str, Any]]:
    common = {"resolution": 224, "num_classes": 1000, "base_width": 64, "stem_kernel": 7, "se": False}
    return [
        {**common, "name": "resnet18", "bottleneck": False, "depths": [2, 2, 2, 2], "groups": 1, "width_per_group": 64},
        {**common, "name": "resnet50", "bottleneck": True, "depths": [3, 4, 6, 3], "groups": 1, "width_per_group": 64},
        {**common, "name": "resnext50_32x4d", "bottleneck": True, "depths": [3, 4, 6, 3], "groups": 32, "width_per_group": 4},
    ]
