"""U-Net style encoder-decoders for segmentation: 3-5 levels, skip connections merged by Concat or Add, upsampling by
ConvTranspose or Resize (nearest / bilinear), plain, residual or depthwise-separable convolution blocks, and a
per-pixel classifier at full resolution."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, conv_bn
from training.netgen.dense import SEGMENTATION_CLASSES, upsample

NAME = "unet"


class ConvBlock(nn.Module):
    """``convs`` 3x3 conv-BN-act layers (plain), the same with a 1x1 skip around them (residual), or depthwise 3x3 +
    pointwise 1x1 pairs (separable)."""

    def __init__(self, c_in: int, c_out: int, convs: int, kind: str, act: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            cin = c_in if i == 0 else c_out
            if kind == "separable":
                layers += [conv_bn(cin, cin, 3, groups=cin, act=act), conv_bn(cin, c_out, 1, act=act)]
            else:
                layers.append(conv_bn(cin, c_out, 3, act=act))
        self.body = nn.Sequential(*layers)
        self.skip = (conv_bn(c_in, c_out, 1, act=None) if c_in != c_out else nn.Identity()) if kind == "residual" else None

    def forward(self, x):  # noqa: ANN001, ANN201
        out = self.body(x)
        return out + self.skip(x) if self.skip is not None else out


class UNet(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        kind, act, convs = spec["block"], spec["act"], spec["convs"]
        widths = [min(spec["max_width"], spec["base_width"] * 2**i) for i in range(spec["levels"] + 1)]
        self.concat = spec["merge"] == "concat"
        self.down, self.pools = nn.ModuleList(), nn.ModuleList()
        c_in = 3
        for width in widths[:-1]:
            self.down.append(ConvBlock(c_in, width, convs, kind, act))
            self.pools.append(nn.MaxPool2d(2) if spec["down"] == "maxpool" else conv_bn(width, width, 3, 2, act=act))
            c_in = width
        self.bottom = ConvBlock(c_in, widths[-1], convs, kind, act)
        self.up, self.merge = nn.ModuleList(), nn.ModuleList()
        c_in = widths[-1]
        for width in reversed(widths[:-1]):
            if spec["up"] == "transpose":
                self.up.append(nn.ConvTranspose2d(c_in, width, 2, 2))
            else:
                self.up.append(nn.Sequential(upsample(2, spec["up"]), conv_bn(c_in, width, 1, act=act)))
            self.merge.append(ConvBlock(2 * width if self.concat else width, width, convs, kind, act))
            c_in = width
        self.head = nn.Conv2d(c_in, spec["num_classes"], 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        skips = []
        for block, pool in zip(self.down, self.pools, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = up(x)
            x = merge(torch.cat([x, skip], 1) if self.concat else x + skip)
        return self.head(x)


def sample(rng: random.Random) -> dict[str, Any]:
    return {
        "resolution": choose_resolution(rng),
        "num_classes": rng.choice(SEGMENTATION_CLASSES),
        "levels": rng.randint(3, 5),
        "base_width": rng.choice([8, 16, 24, 32, 48]),
        "max_width": rng.choice([256, 512]),
        "convs": rng.randint(1, 3),
        "block": rng.choice(["plain", "residual", "separable"]),
        "down": rng.choice(["maxpool", "stride"]),
        "up": rng.choice(["transpose", "nearest", "bilinear"]),
        "merge": rng.choice(["concat", "add"]),
        "act": rng.choice(["relu", "relu6", "silu"]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return UNet(spec)


def canonical() -> list[dict[str, Any]]:
    return []
