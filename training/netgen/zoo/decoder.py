"""Transformer decoders taking one autoregressive step with a KV cache, as a language model runs when it generates:
one token id in, and per layer the cached keys and values of the ``past`` tokens before it (graph inputs, as in a
Hugging Face ``past_key_values`` export); the next-token logits and each layer's cache grown by one step out.
GPT style (LayerNorm, learned positions, fused QKV, GELU / ReLU MLP, biases) or Llama style (RMSNorm, rotary
positions, separate Q / K / V with grouped-query attention, SwiGLU MLP, no biases).

At batch 1 and one token, every linear layer is a matrix-vector product that reads its whole weight once, and the
attention products are batched one-row products over the cache: work no other family holds. A recurrent network's
steps are such products too, yet with this family in training a held-out RNN family was missed as badly as without it
(56 against 53 %, ``benchmarks/results/onnx_latency_epyc21_lofo_rnn_decoder.md``)."""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import nn

from training.netgen.blocks import ACTIVATIONS

NAME = "decoder"
MAX_PARAMS = 6e7  # larger draws lose layers, then vocabulary (exports stay under 240 MB; a 1-thread step under ~15 ms)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):  # noqa: ANN001, ANN201
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate, self.up, self.down = (
            nn.Linear(dim, hidden, False),
            nn.Linear(dim, hidden, False),
            nn.Linear(hidden, dim, False),
        )

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class DecoderBlock(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        dim, self.heads, self.kv_heads = spec["dim"], spec["heads"], spec["kv_heads"]
        self.head_dim = dim // self.heads
        llama = spec["style"] == "llama"
        norm = RMSNorm if llama else nn.LayerNorm
        self.norm1, self.norm2 = norm(dim), norm(dim)
        kv_dim = self.kv_heads * self.head_dim
        self.fused = not llama
        if self.fused:
            self.qkv = nn.Linear(dim, dim + 2 * kv_dim)
        else:
            self.q, self.k, self.v = nn.Linear(dim, dim, False), nn.Linear(dim, kv_dim, False), nn.Linear(dim, kv_dim, False)
        self.out = nn.Linear(dim, dim, bias=not llama)
        hidden = spec["mlp_hidden"]
        self.mlp = (
            SwiGLU(dim, hidden)
            if llama
            else nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[spec["act"]](), nn.Linear(hidden, dim))
        )
        self.rotary = llama
        if llama:  # cos / sin of the new token's position (= the cache length), constants in the export
            inv_freq = 1.0 / 10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim)
            angles = spec["past"] * inv_freq
            self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()]), persistent=False)
            self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()]), persistent=False)

    def forward(self, x, past_key, past_value):  # noqa: ANN001, ANN201
        h = self.norm1(x)
        if self.fused:
            kv_dim = self.kv_heads * self.head_dim
            q, k, v = self.qkv(h).split([x.shape[-1], kv_dim, kv_dim], dim=-1)
        else:
            q, k, v = self.q(h), self.k(h), self.v(h)
        q = q.view(1, 1, self.heads, self.head_dim).transpose(1, 2)  # (1, heads, 1, head_dim)
        k = k.view(1, 1, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(1, 1, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rotary:
            q = q * self.cos + rotate_half(q) * self.sin
            k = k * self.cos + rotate_half(k) * self.sin
        key, value = torch.cat([past_key, k], dim=2), torch.cat([past_value, v], dim=2)  # (1, kv_heads, past+1, d)
        keys, values = key, value
        if self.kv_heads < self.heads:
            keys = keys.repeat_interleave(self.heads // self.kv_heads, dim=1)
            values = values.repeat_interleave(self.heads // self.kv_heads, dim=1)
        attention = torch.softmax(q @ keys.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        y = (attention @ values).transpose(1, 2).reshape(1, 1, -1)
        x = x + self.out(y)
        return x + self.mlp(self.norm2(x)), key, value


class DecoderStep(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        dim = spec["dim"]
        self.embed = nn.Embedding(spec["vocab"], dim)
        self.position = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if spec["style"] == "gpt" else None
        self.blocks = nn.ModuleList(DecoderBlock(spec) for _ in range(spec["layers"]))
        self.norm = RMSNorm(dim) if spec["style"] == "llama" else nn.LayerNorm(dim)
        self.head = nn.Linear(dim, spec["vocab"], bias=False)

    def forward(self, ids, *past):  # noqa: ANN001, ANN201
        x = self.embed(ids)
        if self.position is not None:
            x = x + self.position
        present = []
        for index, block in enumerate(self.blocks):
            x, key, value = block(x, past[2 * index], past[2 * index + 1])
            present += [key, value]
        return (self.head(self.norm(x)), *present)


def parameters(spec: dict[str, Any]) -> int:
    """Weights of a spec (norms and biases left out): embedding and head, and per layer attention and MLP."""
    dim, kv_dim = spec["dim"], spec["kv_heads"] * spec["dim"] // spec["heads"]
    mlp = (3 if spec["style"] == "llama" else 2) * dim * spec["mlp_hidden"]
    return 2 * spec["vocab"] * dim + spec["layers"] * (2 * dim * dim + 2 * dim * kv_dim + mlp)


def sample(rng: random.Random) -> dict[str, Any]:
    style = rng.choice(["gpt", "llama"])
    heads = rng.choice([2, 4, 8, 8, 12, 16])
    head_dim = rng.choice([32, 64, 64])
    dim = heads * head_dim
    llama = style == "llama"
    spec: dict[str, Any] = {
        "style": style,
        "vocab": rng.choice([1000, 8000, 32000, 50257]),
        "dim": dim,
        "heads": heads,
        "kv_heads": max(1, heads // rng.choice([1, 2, 4])) if llama else heads,
        "layers": rng.randint(1, 12),
        "past": rng.choice([16, 32, 64, 128, 256, 512, 1024]),
        "mlp_hidden": (int(dim * 8 / 3) + 31) // 32 * 32 if llama else dim * rng.choice([2, 4, 4]),
        "act": "silu" if llama else rng.choice(["gelu", "gelu", "relu"]),
    }
    while parameters(spec) > MAX_PARAMS and spec["layers"] > 1:
        spec["layers"] -= 1
    while parameters(spec) > MAX_PARAMS and spec["vocab"] > 1000:
        spec["vocab"] = max(1000, spec["vocab"] // 4)
    return spec


def build(spec: dict[str, Any]) -> nn.Module:
    return DecoderStep(spec)


def example_input(spec: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """The token id and, per layer, the cached keys and values: (1, kv_heads, past, head_dim) each."""
    cache = (1, spec["kv_heads"], spec["past"], spec["dim"] // spec["heads"])
    return (torch.zeros(1, 1, dtype=torch.long), *[torch.randn(cache) for _ in range(2 * spec["layers"])])


def _gpt(name: str, layers: int, past: int) -> dict[str, Any]:
    return {"name": name, "style": "gpt", "vocab": 50257, "dim": 768, "heads": 12, "kv_heads": 12, "layers": layers,
            "past": past, "mlp_hidden": 3072, "act": "gelu"}  # fmt: skip


def _llama(name: str, dims: tuple[int, int, int, int, int, int], past: int) -> dict[str, Any]:
    vocab, dim, heads, kv_heads, layers, hidden = dims
    return {"name": name, "style": "llama", "vocab": vocab, "dim": dim, "heads": heads, "kv_heads": kv_heads,
            "layers": layers, "past": past, "mlp_hidden": hidden, "act": "silu"}  # fmt: skip


def canonical() -> list[dict[str, Any]]:
    """Published decoder shapes at one step (random weights): GPT-2 small and DistilGPT-2, llama2.c's TinyStories
    models (15M, 42M, 110M) and SmolLM-135M (grouped-query attention, 30 layers); GPT-2 and SmolLM are larger than any
    sample (``MAX_PARAMS``)."""
    return [
        _gpt("gpt2_past128", 12, 128),
        _gpt("gpt2_past512", 12, 512),
        _gpt("distilgpt2_past128", 6, 128),
        _llama("stories15m_past256", (32000, 288, 6, 6, 6, 768), 256),
        _llama("stories42m_past256", (32000, 512, 8, 8, 8, 1376), 256),
        _llama("stories110m_past256", (32000, 768, 12, 12, 12, 2048), 256),
        _llama("smollm135m_past128", (49152, 576, 9, 3, 30, 1536), 128),
    ]
