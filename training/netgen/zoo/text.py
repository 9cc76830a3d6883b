"""Transformer text encoders (BERT / DistilBERT style): token ids through an embedding table (ONNX ``Gather``),
learned positions, post-LN (BERT) or pre-LN encoder blocks with GELU or ReLU MLPs, and a pooled classifier
(first token, Linear + Tanh), a per-token tagger, or a language-model head over the vocabulary."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import ACTIVATIONS, MultiHeadAttention

NAME = "text"


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, act: str, pre_norm: bool) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.ln1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.ln2, self.mlp = nn.LayerNorm(dim), nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[act](), nn.Linear(hidden, dim))

    def forward(self, x):  # noqa: ANN001, ANN201
        if self.pre_norm:
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.mlp(x))


class TextEncoder(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        dim = spec["dim"]
        self.embed = nn.Embedding(spec["vocab"], dim)
        self.pos = nn.Parameter(torch.randn(1, spec["seq_len"], dim) * 0.02)
        pre_norm = spec["norm"] == "pre"
        self.ln_in = nn.Identity() if pre_norm else nn.LayerNorm(dim)
        self.blocks = nn.Sequential(
            *[EncoderBlock(dim, spec["heads"], spec["mlp_ratio"], spec["act"], pre_norm) for _ in range(spec["depth"])]
        )
        self.ln_out = nn.LayerNorm(dim) if pre_norm else nn.Identity()
        self.head_kind = spec["head"]
        if self.head_kind == "pooled":
            self.head = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, spec["num_classes"]))
        else:
            self.head = nn.Linear(dim, spec["vocab"] if self.head_kind == "lm" else spec["num_classes"])

    def forward(self, ids):  # noqa: ANN001, ANN201
        x = self.ln_out(self.blocks(self.ln_in(self.embed(ids) + self.pos)))
        return self.head(x[:, 0] if self.head_kind == "pooled" else x)


def sample(rng: random.Random) -> dict[str, Any]:
    heads = rng.choice([2, 4, 4, 8, 12])
    head_kind = rng.choice(["pooled", "pooled", "tokens", "lm"])
    return {
        "vocab": rng.choice([2000, 8000, 30522]) if head_kind == "lm" else rng.choice([2000, 8000, 30522, 50000]),
        "seq_len": rng.choice([32, 64, 128, 128, 256, 384, 512]),
        "dim": heads * rng.choice([32, 48, 64]),
        "heads": heads,
        "depth": rng.randint(1, 12),
        "mlp_ratio": rng.choice([2.0, 4.0, 4.0]),
        "act": rng.choice(["gelu", "gelu", "relu"]),
        "norm": rng.choice(["post", "post", "pre"]),
        "head": head_kind,
        "num_classes": rng.choice([2, 3, 9, 20]),
    }


def build(spec: dict[str, Any]) -> nn.Module:
    return TextEncoder(spec)


def example_input(spec: dict[str, Any]) -> torch.Tensor:
    return torch.zeros(1, spec["seq_len"], dtype=torch.long)


def canonical() -> list[dict[str, Any]]:
    """BERT-mini / -small / DistilBERT-shaped encoders at 128 tokens (classification heads)."""
    common = {"vocab": 30522, "seq_len": 128, "mlp_ratio": 4.0, "act": "gelu", "norm": "post", "head": "pooled", "num_classes": 2}
    return [
        {**common, "name": "bert_mini", "dim": 256, "heads": 4, "depth": 4},
        {**common, "name": "bert_small", "dim": 512, "heads": 8, "depth": 4},
        {**common, "name": "distilbert", "dim": 768, "heads": 12, "depth": 6},
    ]
