"""The multi-stage fusion transformer (NAR-Former v1), sized for CPU training.

Stage 1: pre-LayerNorm encoder blocks over [depth token, node tokens, end token] -> memory M.
Stage 2: 4 learnable queries cross-attend to M, then an FFN -> 4 tokens.
Stages 3 and 4: the previous tokens re-attend to M (fuse), then 2 (then 1) learnable queries cross-attend to
them, then an FFN. Final LayerNorm and one linear head with one output per target (normalised units).
With ``node_sum``, every encoded node token also adds its own per-target term (LayerNorm, linear, summed over the
nodes) to the head's output: a path for targets that are close to a sum over layers, such as FBNet latency in log
units, which a one-hot ridge fits almost exactly. The node head starts at zero, so training begins from the plain
fusion readout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from model.tokenizer import CODE_DIM, TOKEN_DIM


@dataclass
class NetworkConfig:
    n_targets: int
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    queries: tuple[int, ...] = (4, 2, 1)
    node_sum: bool = False
    attention_hops: int = 0  # whole networks: a node attends only to nodes within this many graph hops (0: all)

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    """Multi-head attention with an optional key mask (True = attend), per key or per (query, key) pair."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.scale = 1.0 / math.sqrt(d_model // n_heads)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, lq, d = x.shape
        lk = memory.shape[1]
        h = self.n_heads
        q = self.q(x).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(memory).view(b, lk, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if key_mask is not None:  # (B, Lk): keys each query may read; (B, Lq, Lk): per query
            allowed = key_mask[:, None, None, :] if key_mask.dim() == 2 else key_mask[:, None, :, :]
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, lq, d)
        return self.proj(out)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, mult * d_model)
        self.down = nn.Linear(mult * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.relu(self.up(x))))


class Block(nn.Module):
    """Pre-LN block: x + attn(LN(x), LN(memory)), then x + FFN(LN(x)). Self-attention when memory is None."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.ln_x = nn.LayerNorm(cfg.d_model)
        self.ln_m = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_mult, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x_norm = self.ln_x(x)
        context = x_norm if memory is None else self.ln_m(memory)
        x = x + self.dropout(self.attn(x_norm, context, key_mask))
        return x + self.ffn(self.ln_f(x))


class FusionStage(nn.Module):
    """Previous tokens re-read the memory (if any), then ``n_queries`` learnable queries read the result."""

    def __init__(self, cfg: NetworkConfig, n_queries: int, fuse: bool) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, n_queries, cfg.d_model) * 0.02)
        self.fuse = Block(cfg) if fuse else None
        self.read = Block(cfg)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        if self.fuse is not None:
            tokens = self.fuse(tokens, memory, memory_mask)
            source, source_mask = tokens, None
        else:
            source, source_mask = memory, memory_mask
        queries = self.queries.expand(tokens.shape[0], -1, -1)
        return self.read(queries, source, source_mask)


class FusionTransformer(nn.Module):
    """Tokens (B, L, 192) + mask (B, L) + depth code (B, 64) -> (B, n_targets) normalised predictions."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_proj = nn.Linear(TOKEN_DIM, cfg.d_model)
        self.depth_proj = nn.Sequential(nn.Linear(CODE_DIM, cfg.d_model), nn.ReLU())
        self.end_token = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02)
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.stages = nn.ModuleList(FusionStage(cfg, q, fuse=i > 0) for i, q in enumerate(cfg.queries))
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_targets)
        if cfg.node_sum:
            self.ln_nodes = nn.LayerNorm(cfg.d_model)
            self.node_head = nn.Linear(cfg.d_model, cfg.n_targets)
            nn.init.zeros_(self.node_head.weight)
            nn.init.zeros_(self.node_head.bias)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        x = torch.cat([self.depth_proj(depth)[:, None, :], self.token_proj(tokens), self.end_token.expand(b, -1, -1)], dim=1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=mask.device)
        key_mask = torch.cat([ones, mask, ones], dim=1)
        for block in self.encoder:
            x = block(x, None, key_mask)
        memory, fused = x, x
        for stage in self.stages:
            fused = stage(fused, memory, key_mask)
        out = self.head(self.ln_out(fused[:, 0, :]))
        if self.cfg.node_sum:  # memory[:, 1:-1] are the node tokens; padding adds nothing
            node_terms = self.node_head(self.ln_nodes(memory[:, 1:-1, :])) * mask[..., None].to(memory.dtype)
            out = out + node_terms.sum(dim=1)
        return out


class Denormalise(nn.Module):
    """Wraps a trained network for export: outputs target units.

    ``kinds`` per target: 0 identity, 1 log (value = exp), 2 log-error (value = max(100 - exp, 0)), as in the trainer;
    then every value is at least its ``floors`` entry (chance for accuracies; -inf, i.e. none, for the others).
    """

    def __init__(
        self, net: FusionTransformer, mean: torch.Tensor, std: torch.Tensor, kinds: torch.Tensor, floors: torch.Tensor
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.register_buffer("is_log", kinds == 1)
        self.register_buffer("is_log_error", kinds == 2)
        self.register_buffer("floors", floors.float().clamp_min(torch.finfo(torch.float32).min))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        raw = self.net(tokens, mask, depth) * self.std + self.mean
        value = torch.where(self.is_log, torch.exp(raw), raw)
        value = torch.where(self.is_log_error, torch.clamp(100.0 - torch.exp(raw), min=0.0), value)
        return torch.maximum(value, self.floors)
