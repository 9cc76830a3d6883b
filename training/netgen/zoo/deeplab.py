"""DeepLabV3 / V3+ style segmentation: a ResNet or MobileNet backbone dilated past output stride 8 or 16, an ASPP
module (1x1 branch, dilated 3x3 branches, optional image-pooling branch upsampled by Resize), an optional V3+
decoder that merges stride-4 features, and a bilinear Resize of the logits to the input size."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, conv_bn
from training.netgen.dense import SEGMENTATION_CLASSES, Backbone, sample_backbone, upsample

NAME = "deeplab"


class ASPP(nn.Module):
    def __init__(self, c_in: int, width: int, rates: list[int], separable: bool, pooled_size: int | None) -> None:
        super().__init__()
        branches: list[nn.Module] = [conv_bn(c_in, width, 1)]
        for rate in rates:
            if separable:
                branches.append(nn.Sequential(conv_bn(c_in, c_in, 3, groups=c_in, dilation=rate), conv_bn(c_in, width, 1)))
            else:
                branches.append(conv_bn(c_in, width, 3, dilation=rate))
        self.branches = nn.ModuleList(branches)
        self.pooling = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, width, 1), nn.ReLU(), upsample(pooled_size, "bilinear"))
            if pooled_size
            else None
        )
        count = len(branches) + (1 if pooled_size else 0)
        self.project = conv_bn(count * width, width, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        outs = [branch(x) for branch in self.branches]
        if self.pooling is not None:
            outs.append(self.pooling(x))
        return self.project(torch.cat(outs, 1))


class DeepLab(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        stride = spec["output_stride"]
        self.backbone = Backbone(spec["backbone"], output_stride=stride)
        width = spec["aspp_width"]
        rates = [r * 16 // stride for r in spec["rates"]]
        pooled = spec["resolution"] // stride if spec["image_pooling"] else None
        self.aspp = ASPP(self.backbone.channels[-1], width, rates, spec["separable"], pooled)
        self.decoder = spec["decoder"]
        classes = spec["num_classes"]
        if self.decoder:
            self.low = conv_bn(self.backbone.channels[0], 48, 1)
            self.up = upsample(stride // 4, "bilinear")
            self.fuse = nn.Sequential(conv_bn(width + 48, width, 3), conv_bn(width, width, 3))
            self.classifier = nn.Sequential(nn.Conv2d(width, classes, 1), upsample(4, "bilinear"))
        else:
            self.classifier = nn.Sequential(nn.Conv2d(width, classes, 1), upsample(stride, "bilinear"))

    def forward(self, x):  # noqa: ANN001, ANN201
        features = self.backbone(x)
        out = self.aspp(features[-1])
        if self.decoder:
            out = self.fuse(torch.cat([self.up(out), self.low(features[0])], 1))
        return self.classifier(out)


def sample(rng: random.Random) -> dict[str, Any]:
    return {
        "resolution": choose_resolution(rng, low=128),
        "num_classes": rng.choice(SEGMENTATION_CLASSES),
        "backbone": sample_backbone(rng),
        "output_stride": rng.choice([8, 16, 16]),
        "aspp_width": rng.choice([64, 128, 256]),
        "rates": rng.choice([[6, 12, 18], [6, 12], [3, 6, 9], [12]]),
        "separable": rng.random() < 0.4,
        "image_pooling": rng.random() < 0.7,
        "decoder": rng.random() < 0.5,
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return DeepLab(spec)


def canonical() -> list[dict[str, Any]]:
    return []
