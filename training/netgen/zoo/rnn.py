"""Recurrent sequence models: float features (audio frames, sensor series) or token ids through an embedding, an
optional strided Conv1d front end, a stack of LSTM or GRU layers (uni- or bidirectional), and a head on the last
step, on the mean over steps, or on every step (tagging / CTC-style)."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

NAME = "rnn"
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class Recurrent(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        tokens = spec["input"] == "tokens"
        width = spec["embed"] if tokens else spec["features"]
        self.embed = nn.Embedding(spec["vocab"], width) if tokens else None
        front: list[nn.Module] = []
        for channels, kernel, stride in spec["frontend"]:
            front += [nn.Conv1d(width, channels, kernel, stride, kernel // 2, bias=False), nn.BatchNorm1d(channels), nn.ReLU()]
            width = channels
        self.front = nn.Sequential(*front) if front else None
        self.core = CELLS[spec["cell"]](
            width, spec["hidden"], num_layers=spec["layers"], batch_first=True, bidirectional=spec["bidirectional"]
        )
        self.head_kind = spec["head"]
        self.head = nn.Linear(spec["hidden"] * (2 if spec["bidirectional"] else 1), spec["num_classes"])

    def forward(self, x):  # noqa: ANN001, ANN201
        if self.embed is not None:
            x = self.embed(x)
        if self.front is not None:
            x = self.front(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.core(x)
        if self.head_kind == "last":
            return self.head(out[:, -1])
        if self.head_kind == "mean":
            return self.head(out.mean(dim=1))
        return self.head(out)


def sample(rng: random.Random) -> dict[str, Any]:
    tokens = rng.random() < 0.4
    spec: dict[str, Any] = {"input": "tokens" if tokens else "features", "seq_len": rng.randrange(32, 257, 16)}
    if tokens:
        spec |= {"vocab": rng.choice([1000, 5000, 10000, 30000]), "embed": rng.choice([64, 128, 256, 300, 512])}
    else:
        spec["features"] = rng.choice([13, 40, 64, 80, 128, 161, 256])
    frontend = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        frontend.append([rng.choice([64, 128, 256]), rng.choice([3, 5, 11]), rng.choice([1, 2])])
    spec |= {
        "frontend": frontend,
        "cell": rng.choice(["lstm", "lstm", "gru"]),
        "hidden": rng.choice([64, 96, 128, 192, 256, 320, 384, 512, 640, 768, 1024]),
        "layers": rng.choice([1, 1, 2, 2, 3, 4]),
        "bidirectional": rng.random() < 0.5,
        "head": rng.choice(["last", "last", "mean", "per_step"]),
        "num_classes": rng.choice([2, 10, 29, 100, 1000]),
    }
    return spec


def build(spec: dict[str, Any]) -> nn.Module:
    return Recurrent(spec)


def example_input(spec: dict[str, Any]) -> torch.Tensor:
    if spec["input"] == "tokens":
        return torch.zeros(1, spec["seq_len"], dtype=torch.long)
    return torch.randn(1, spec["seq_len"], spec["features"])


def canonical() -> list[dict[str, Any]]:
    return []
