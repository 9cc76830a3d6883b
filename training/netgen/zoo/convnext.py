"""ConvNeXt: patchify stem, blocks of depthwise 7x7 -> channels-last LayerNorm -> inverted GELU MLP -> layer scale."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import choose_resolution, num_classes

NAME = "convnext"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW tensor, via permute to channels-last and back."""

    def forward(self, x):  # noqa: ANN001, ANN201
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim: int, kernel: int, mlp_ratio: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.ln = nn.LayerNorm(dim)
        self.up, self.act, self.down = nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):  # noqa: ANN001, ANN201
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.down(self.act(self.up(self.ln(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def build(spec: dict[str, Any]) -> nn.Module:
    dims = spec["dims"]
    layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0])]
    for i, (dim, depth) in enumerate(zip(dims, spec["depths"], strict=True)):
        if i > 0:
            layers += [LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [Block(dim, spec["kernel"], spec["mlp_ratio"]) for _ in range(depth)]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], spec["num_classes"])]
    return nn.Sequential(*layers, *head)


def sample(rng: random.Random) -> dict[str, Any]:
    base = rng.choice([24, 32, 40, 48, 64, 80, 96])
    return {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "dims": [base, 2 * base, 4 * base, 8 * base],
        "depths": [rng.randint(1, 3), rng.randint(1, 3), rng.randint(2, 9), rng.randint(1, 3)],
        "kernel": rng.choice([3, 5, 7, 7]),
        "mlp_ratio": rng.choice([2, 4]),
    }


def canonical() -> list[dict[str, Any]]:
    return [
        {
            "name": "convnext_tiny",
            "resolution": 224,
            "num_classes": 1000,
            "dims": [96, 192, 384, 768],
            "depths": [3, 3, 9, 3],
            "kernel": 7,
            "mlp_ratio": 4,
        }
    ]
