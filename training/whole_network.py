"""The fusion transformer for whole networks: node tokens + graph features -> log-latency.

Encoder: ``token_proj`` then pre-LN self-attention blocks over the node tokens (shared with the cell network).
Readout, built for generalisation to unseen families: latency is close to a sum of per-op costs, so every
contextualised node token gets a log-cost s_i and the additive part is logsumexp_i(s_i) = log(sum of node
costs). The multi-stage fusion (4 -> 2 -> 1 queries) reads the whole sequence and, joined with the whole-graph
features, adds a correction for effects no single op carries (cache pressure, fusion by onnxruntime).
Output: natural log of latency in milliseconds (B, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from model.network_tokenizer import GRAPH_FEATURE_DIM, NETWORK_TOKEN_DIM
from training.network import Block, FusionStage, NetworkConfig


class WholeNetworkTransformer(nn.Module):
    def __init__(self, cfg: NetworkConfig, log_latency_mean: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.token_proj = nn.Sequential(nn.Linear(NETWORK_TOKEN_DIM, d), nn.GELU(), nn.Linear(d, d))
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_nodes = nn.LayerNorm(d)
        self.node_cost = nn.Linear(d, 1)
        self.stages = nn.ModuleList(FusionStage(cfg, q, fuse=i > 0) for i, q in enumerate(cfg.queries))
        self.ln_out = nn.LayerNorm(d)
        self.feature_norm = nn.LayerNorm(GRAPH_FEATURE_DIM)
        self.correction = nn.Sequential(nn.Linear(d + GRAPH_FEATURE_DIM, d), nn.GELU(), nn.Linear(d, 1))
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)
        nn.init.constant_(self.node_cost.bias, log_latency_mean - 4.0)  # ~ e^4 = 55 nodes share the latency

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = self.token_proj(tokens)
        for block in self.encoder:
            x = block(x, None, mask)
        node_log_cost = self.node_cost(self.ln_nodes(x)).squeeze(-1)
        node_log_cost = node_log_cost.masked_fill(~mask, -1e4)
        additive = torch.logsumexp(node_log_cost, dim=1, keepdim=True)
        fused = x
        for stage in self.stages:
            fused = stage(fused, x, mask)
        summary = torch.cat([self.ln_out(fused[:, 0, :]), self.feature_norm(features)], dim=-1)
        return additive + self.correction(summary)


class LatencyEnsemble(nn.Module):
    """Several trained members in one graph: outputs latency_ms mean and std across members, (B, 2).

    Each member predicts log-latency; the ensemble mean and std are taken in log space, then reported as
    exp(mean) and exp(mean) * std (the first-order std of the latency), so the service gets value and spread.
    """

    def __init__(self, members: list[WholeNetworkTransformer], std_scale: float = 1.0) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        # members trained on one split agree more than they err: the spread is scaled (fitted on validation only)
        self.register_buffer("std_scale", torch.tensor(float(std_scale)))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        logs = torch.cat([m(tokens, mask, features) for m in self.members], dim=1)
        mean = logs.mean(dim=1, keepdim=True)
        std = logs.std(dim=1, keepdim=True, unbiased=False) * self.std_scale if len(self.members) > 1 else torch.zeros_like(mean)
        value = torch.exp(mean)
        return torch.cat([value, value * std], dim=1)
