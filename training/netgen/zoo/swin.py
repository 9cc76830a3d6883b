"""Swin Transformer: patch embedding, (shifted) window attention with relative position bias, patch merging."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import Mlp, num_classes

NAME = "swin"


def relative_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """(windows, N, N) additive mask keeping attention inside each region of a cyclically shifted map."""
    regions = torch.zeros(size, size)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for h in bounds:
        for w in bounds:
            regions[h, w] = label
            label += 1
    windows = regions.view(size // window, window, size // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    return (windows[:, None, :] != windows[:, :, None]).float() * -100.0


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, size: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.size, self.window, self.heads = size, min(window, size), heads
        self.shift = shift if size > window else 0
        self.scale = (dim // heads) ** -0.5
        self.ln1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ln2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)
        w = self.window
        self.table = nn.Parameter(torch.randn((2 * w - 1) ** 2, heads) * 0.02)
        self.register_buffer("index", relative_index(w), persistent=False)
        mask = shift_mask(size, w, self.shift) if self.shift else torch.zeros((size // w) ** 2, w * w, w * w)
        self.register_buffer("mask", mask[:, None], persistent=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w_, c = x.shape
        w, n_win = self.window, (self.size // self.window) ** 2
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), (1, 2))
        win = x.view(b, h // w, w, w_ // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)
        q, k, v = self.qkv(win).reshape(-1, w * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.table[self.index.reshape(-1)].reshape(w * w, w * w, self.heads).permute(2, 0, 1)
        logits = (logits.view(b, n_win, self.heads, w * w, w * w) + bias + self.mask).view(-1, self.heads, w * w, w * w)
        out = self.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(-1, w * w, c))
        out = out.view(b, h // w, w_ // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w_, c)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
        return out

    def forward(self, x):  # noqa: ANN001, ANN201
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln, self.reduce = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduce(self.ln(x))


class Swin(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        dim, size = spec["dim"], spec["resolution"] // spec["patch"]
        self.embed, self.ln_embed = nn.Conv2d(3, dim, spec["patch"], spec["patch"]), nn.LayerNorm(dim)
        layers: list[nn.Module] = []
        for stage, (depth, heads) in enumerate(zip(spec["depths"], spec["heads"], strict=True)):
            if stage > 0:
                layers.append(PatchMerging(dim))
                dim, size = 2 * dim, size // 2
            for i in range(depth):
                shift = spec["window"] // 2 if i % 2 else 0
                layers.append(SwinBlock(dim, heads, size, spec["window"], shift, spec["mlp_ratio"]))
        self.layers = nn.Sequential(*layers)
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, spec["num_classes"])

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.ln_embed(self.embed(x).permute(0, 2, 3, 1))
        return self.head(self.ln(self.layers(x)).mean(dim=(1, 2)))


def sample(rng: random.Random) -> dict[str, Any]:
    stages = rng.choice([3, 4])
    window = rng.choice([4, 6, 7, 8])
    unit = 4 * window * 2 ** (stages - 1)
    choices = [r for r in range(unit, 257, unit) if r >= 96] or [unit]
    heads0 = rng.choice([1, 2, 3])
    return {
        "resolution": rng.choice(choices),
        "num_classes": num_classes(rng),
        "patch": 4,
        "window": window,
        "dim": heads0 * 32,
        "depths": [rng.choice([2, 2, 4, 6]) if s == 2 else 2 for s in range(stages)],
        "heads": [heads0 * 2**s for s in range(stages)],
        "mlp_ratio": rng.choice([2.0, 4.0]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return Swin(spec)


def canonical() -> list[dict[str, Any]]:
    return [
        {
            "name": "swin_tiny",
            "resolution": 224,
            "num_classes": 1000,
            "patch": 4,
            "window": 7,
            "dim": 96,
            "depths": [2, 2, 6, 2],
            "heads": [3, 6, 12, 24],
            "mlp_ratio": 4.0,
        }
    ]
