"""Feature pyramid networks: a ResNet or MobileNet backbone, lateral 1x1 convs, a top-down path (Resize x2 + Add),
an optional bottom-up path (PANet), and either a detection head (shared convs on every level, outputs flattened and
concatenated, RetinaNet / YOLO style) or a semantic-segmentation head (every level upsampled to stride 4 and summed,
Panoptic FPN style)."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, conv_bn
from training.netgen.dense import SEGMENTATION_CLASSES, Backbone, sample_backbone, upsample

NAME = "fpn"


class FPN(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = Backbone(spec["backbone"])
        self.first = 4 - spec["levels"]  # the pyramid uses the last ``levels`` backbone stages
        width = spec["width"]
        used = self.backbone.channels[self.first :]
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in used])
        self.smooth = nn.ModuleList([conv_bn(width, width, 3) for _ in used])
        self.up = upsample(2, spec["upsample"])
        self.bottom_up = nn.ModuleList([conv_bn(width, width, 3, 2) for _ in used[1:]]) if spec["panet"] else None
        self.detect = spec["head"] == "detect"
        if self.detect:
            outputs = spec["anchors"] * (spec["num_classes"] + 5)
            convs = [conv_bn(width, width, 3) for _ in range(spec["head_convs"])]
            self.head = nn.Sequential(*convs, nn.Conv2d(width, outputs, 1))
        else:
            self.head = nn.ModuleList(
                [nn.Sequential(conv_bn(width, 128, 3), upsample(2**i, "bilinear")) if i else conv_bn(width, 128, 3)
                 for i in range(len(used))]
            )  # fmt: skip
            self.classifier = nn.Sequential(nn.Conv2d(128, spec["num_classes"], 1), upsample(2 ** (self.first + 2), "bilinear"))

    def forward(self, x):  # noqa: ANN001, ANN201
        features = self.backbone(x)[self.first :]
        top = self.lateral[-1](features[-1])
        pyramid = [top]
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1], strict=True):
            top = lateral(feature) + self.up(top)
            pyramid.insert(0, top)
        pyramid = [smooth(level) for smooth, level in zip(self.smooth, pyramid, strict=True)]
        if self.bottom_up is not None:
            for i, down in enumerate(self.bottom_up):
                pyramid[i + 1] = pyramid[i + 1] + down(pyramid[i])
        if self.detect:
            return torch.cat([self.head(level).flatten(2) for level in pyramid], 2)
        merged = sum(head(level) for head, level in zip(self.head, pyramid, strict=True))
        return self.classifier(merged)


def sample(rng: random.Random) -> dict[str, Any]:
    head = rng.choice(["detect", "segment"])
    return {
        "resolution": choose_resolution(rng, low=128),
        "num_classes": rng.choice([1, 20, 80]) if head == "detect" else rng.choice(SEGMENTATION_CLASSES),
        "backbone": sample_backbone(rng),
        "levels": rng.choice([3, 4]),
        "width": rng.choice([64, 96, 128, 192, 256]),
        "upsample": rng.choice(["nearest", "nearest", "bilinear"]),
        "panet": rng.random() < 0.4,
        "head": head,
        "head_convs": rng.randint(0, 3),
        "anchors": rng.choice([1, 3, 9]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return FPN(spec)


def canonical() -> list[dict[str, Any]]:
    return []
