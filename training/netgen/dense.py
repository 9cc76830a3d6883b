"""Shared parts of the dense-prediction families (FPN, DeepLab): a sampled backbone with feature maps at strides
4, 8, 16 and 32 (or dilated beyond an output stride), and upsampling layers that export to ONNX ``Resize``.

Sizes are static: every upsampling factor is known when the module is built, so the ONNX graph holds plain
``Resize`` nodes with constant scales, as a traced export of a fixed-size model does.
"""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import InvertedResidual, conv_bn, make_divisible
from training.netgen.zoo.resnet import Block

SEGMENTATION_CLASSES = (2, 21, 150)  # binary masks, PASCAL VOC, ADE20K


def upsample(factor: float, mode: str) -> nn.Upsample:
    """x ``factor`` spatial upsampling; ``mode`` nearest or bilinear (exports as one ``Resize``)."""
    return nn.Upsample(scale_factor=factor, mode=mode, align_corners=False if mode == "bilinear" else None)


def sample_backbone(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        bottleneck = rng.random() < 0.4
        return {
            "kind": "resnet",
            "stem": rng.choice([16, 24, 32, 48, 64]),
            "depths": [rng.randint(1, 3) for _ in range(4)],
            "bottleneck": bottleneck,
        }
    return {
        "kind": "mobilenet",
        "stem": rng.choice([16, 24, 32]),
        "widths": [rng.choice(w) for w in ([16, 24, 32], [24, 32, 48, 64], [48, 64, 96, 128], [96, 128, 160, 256])],
        "depths": [rng.randint(1, 4) for _ in range(4)],
        "expand": rng.choice([3, 4, 6]),
        "kernel": rng.choice([3, 5]),
        "act": rng.choice(["relu6", "hswish"]),
    }


class Backbone(nn.Module):
    """Stem to stride 4, then four stages at strides 4, 8, 16, 32; stages past ``output_stride`` dilate instead.

    ``channels`` holds each stage's output width; ``forward`` returns the four feature maps."""

    def __init__(self, spec: dict[str, Any], output_stride: int = 32) -> None:
        super().__init__()
        stem = spec["stem"]
        resnet = spec["kind"] == "resnet"
        self.stem = (
            nn.Sequential(conv_bn(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1))
            if resnet
            else nn.Sequential(conv_bn(3, stem, 3, 2, act=spec["act"]), conv_bn(stem, stem, 3, 2, groups=stem, act=spec["act"]))
        )
        stages: list[nn.Module] = []
        self.channels: list[int] = []
        c_in, stride_so_far, dilation = stem, 4, 1
        for index, depth in enumerate(spec["depths"]):
            stride = 1 if index == 0 else 2
            if stride == 2 and stride_so_far >= output_stride:
                stride, dilation = 1, dilation * 2
            stride_so_far *= stride
            if resnet:
                width = min(512, stem * 2**index) * (4 if spec["bottleneck"] else 1)
                inner, bottleneck = (width // 4, True) if spec["bottleneck"] else (width, False)
                blocks = [
                    Block(c_in if i == 0 else width, inner, width, stride if i == 0 else 1, bottleneck, 1, False, dilation)
                    for i in range(depth)
                ]
            else:
                width = make_divisible(spec["widths"][index])
                blocks = [
                    InvertedResidual(
                        c_in if i == 0 else width,
                        width,
                        spec["kernel"],
                        stride if i == 0 else 1,
                        spec["expand"],
                        spec["act"],
                        dilation=dilation,
                    )
                    for i in range(depth)
                ]
            stages.append(nn.Sequential(*blocks))
            self.channels.append(width)
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x):  # noqa: ANN001, ANN201
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
