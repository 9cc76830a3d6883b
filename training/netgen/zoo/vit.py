"""Vision Transformer: conv patch embedding, class token, learned positions, pre-LN attention + GELU MLP blocks.

A spec with ``"norm": "post"`` (the ``vitpost`` family; ViT specs have no such key) puts each LayerNorm after its
residual ``Add`` instead, as BERT and the original Transformer do, and drops the final LayerNorm."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import Mlp, MultiHeadAttention, num_classes

NAME = "vit"


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, post_norm: bool = False) -> None:
        super().__init__()
        self.post_norm = post_norm
        self.ln1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, heads)
        self.ln2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x):  # noqa: ANN001, ANN201
        if self.post_norm:
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.mlp(x))
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ViT(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        dim, patch = spec["dim"], spec["patch"]
        tokens = (spec["resolution"] // patch) ** 2 + 1
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        post_norm = spec.get("norm", "pre") == "post"
        self.blocks = nn.Sequential(
            *[EncoderBlock(dim, spec["heads"], spec["mlp_ratio"], post_norm) for _ in range(spec["depth"])]
        )
        self.ln = nn.Identity() if post_norm else nn.LayerNorm(dim)
        self.head = nn.Linear(dim, spec["num_classes"])

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.ln(self.blocks(x))[:, 0])


def sample(rng: random.Random) -> dict[str, Any]:
    patch = rng.choice([8, 16, 16, 32])
    heads = rng.choice([2, 3, 4, 6])
    dim = heads * rng.choice([32, 48, 64])
    return {
        "resolution": rng.randrange(96, 257, 32) if patch == 32 else rng.randrange(96, 257, patch * 2),
        "num_classes": num_classes(rng),
        "patch": patch,
        "dim": dim,
        "heads": heads,
        "depth": rng.randint(2, 12),
        "mlp_ratio": rng.choice([2.0, 3.0, 4.0]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return ViT(spec)


def canonical() -> list[dict[str, Any]]:
    common = {"resolution": 224, "num_classes": 1000, "patch": 16, "depth": 12, "mlp_ratio": 4.0}
    return [{**common, "name": "vit_tiny_16", "dim": 192, "heads": 3}, {**common, "name": "vit_small_16", "dim": 384, "heads": 6}]
