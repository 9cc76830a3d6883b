"""The fusion transformer for whole networks: node tokens + graph features -> log-latency.

Encoder: ``token_proj`` then pre-LN self-attention blocks over the node tokens (shared with the cell network).
Readout, built for generalisation to unseen families: single-thread latency is close to a sum of per-op costs,
and an op's cost is close to a roofline sum, FLOPs / compute rate + bytes / memory rate + fixed overhead. Every
contextualised node token predicts its three log-rates (how efficient this op is in this context), the node's
FLOPs and bytes (read from its own token) scale them, and the additive part is the log of the sum over nodes. A node
whose kernel repeats its work (a recurrent step, ``model.network_tokenizer``'s repeat column) has one repetition's
FLOPs and bytes in its token; the count multiplies its compute and memory terms, not its per-node overhead.
"cached_additive" splits the memory term of such a node: its bytes once at the memory rate, then repeat - 1 more
times at that rate times a learned factor (a fourth output, the log offset, zero at initialisation), since a step's
weight (R) is read again from cache, not from memory. The re-read term's gradient reaches the offset only, not the
memory rate, so the re-reads no longer teach that a weight read by a one-row product is cheap; where no training
network repeats a node, the offset gets no gradient and stays zero, and the readout is "additive" again.
Not adopted: decoder left out of 21 families read as fast as with "additive" (36.7 %): 33.4 % with the offset
sharing the memory rate's gradient (ab11cc1, 3 seeds), 42.5 % with the stop-gradient (seed 0); an independent re-read
rate with a fixed prior (6d4261e) gave decoder 24.6 % but a held-out RNN, where nothing trains that rate, 580-900 %
(``benchmarks/results/onnx_latency_epyc21_lofo_rnn_decoder_additive_vs_cached*.md``).
Cost grows exactly with FLOPs and bytes, so a network larger or shaped unlike the training families still lands
close (leave-one-family-out figures in ``benchmarks/results/onnx_latency.md``). The multi-stage fusion
(4 -> 2 -> 1 queries) reads the whole sequence and, joined with the whole-graph features, adds a
correction for effects no single op carries (cache pressure, fusion by onnxruntime).
Readouts (``readout``): "contextual" (the above), "additive" (the per-op sum alone, no correction), "local" (each op's
rates read from its own token before attention, plus the correction) and "local_additive" (a learned roofline
kernel sum: per-op rates from the op's own token, nothing else). Chosen on held-out validation families:
"additive" (``benchmarks/results/onnx_latency_readouts.md``), which the shipped ``cpu-ort-1t-v1`` 1.2.0 uses.
Attention (``cfg.attention_hops``): every node reads every node of its network (0, what the shipped predictors do),
or only the nodes within that many graph hops (``training.latency_data.hop_neighbours``). Two hops did no better on
held-out families than the whole network (``benchmarks/results/onnx_latency_epyc_hops2_compare.md``). The service's
ONNX interface has no neighbour mask, so such members are not exported.
Output: natural log of latency in milliseconds (B, 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.network_tokenizer import GRAPH_FEATURE_DIM, NETWORK_TOKEN_DIM, REPEAT_COLUMN, log2_column
from training.network import Block, FusionStage, NetworkConfig

LOG2_CODE_TO_LN = 16.0 * math.log(2.0)  # token code log2(1 + x) / 16 -> ln(1 + x)
READOUTS = ("contextual", "additive", "local", "local_additive", "cached_additive")


class WholeNetworkTransformer(nn.Module):
    def __init__(self, cfg: NetworkConfig, readout: str = "contextual") -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.cfg = cfg
        self.readout = readout
        d = cfg.d_model
        self.token_proj = nn.Sequential(nn.Linear(NETWORK_TOKEN_DIM, d), nn.GELU(), nn.Linear(d, d))
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_nodes = nn.LayerNorm(d)
        self.node_rates = nn.Linear(d, 4 if readout == "cached_additive" else 3)
        self.stages = nn.ModuleList(FusionStage(cfg, q, fuse=i > 0) for i, q in enumerate(cfg.queries))
        self.ln_out = nn.LayerNorm(d)
        self.feature_norm = nn.LayerNorm(GRAPH_FEATURE_DIM)
        self.correction = nn.Sequential(nn.Linear(d + GRAPH_FEATURE_DIM, d), nn.GELU(), nn.Linear(d, 1))
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)
        with torch.no_grad():  # ln ms per FLOP (~100 GFLOP/s), per byte (~10 GB/s) and per node (~3 us) on one core;
            # "cached_additive"'s re-read offset starts at exactly zero (re-reads cost what first reads do)
            self.node_rates.bias.copy_(torch.tensor([-18.4, -16.1, -5.8, 0.0][: self.node_rates.out_features]))
            self.node_rates.weight[3:].zero_()
        encoded_columns = torch.ones(NETWORK_TOKEN_DIM)
        encoded_columns[REPEAT_COLUMN] = 0.0  # the repeat count scales the readout; the encoder never reads it
        self.register_buffer("encoded_columns", encoded_columns, persistent=False)

    def node_costs(
        self, tokens: torch.Tensor, mask: torch.Tensor, neighbours: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The encoded nodes (B, L, d), each node's log roofline terms (B, L, 3: compute, memory, per node; for
        "cached_additive" B, L, 4: compute, first reads, re-reads, per node) and its log cost (B, L; -1e4 on padding),
        which the additive readout sums. ``neighbours`` (B, L, L): which nodes each node's attention reads
        (``cfg.attention_hops``); None reads every node of its network."""
        x = self.token_proj(tokens * self.encoded_columns)
        local = x
        if self.readout != "local_additive":
            for block in self.encoder:
                x = block(x, None, mask if neighbours is None else neighbours)
        rates = self.node_rates(self.ln_nodes(local if self.readout.startswith("local") else x))
        ln_flops = tokens[..., log2_column("flops")] * LOG2_CODE_TO_LN
        ln_bytes = tokens[..., log2_column("memory_bytes")] * LOG2_CODE_TO_LN
        ln_repeat = tokens[..., REPEAT_COLUMN] * LOG2_CODE_TO_LN  # a step run D*T times costs D*T steps, one dispatch
        if self.readout == "cached_additive":  # bytes read once at the memory rate, the other repeat - 1 times offset
            ln_rereads = torch.where(ln_repeat > 0, torch.log((torch.exp(ln_repeat) - 1.0).clamp_min(1.0)), -1e4)
            # the re-reads learn their factor only: they would otherwise teach the memory rate of every node like them
            memory = [ln_bytes + rates[..., 1], ln_bytes + ln_rereads + rates[..., 1].detach() + rates[..., 3]]
        else:
            memory = [ln_bytes + ln_repeat + rates[..., 1]]
        terms = torch.stack([ln_flops + ln_repeat + rates[..., 0], *memory, rates[..., 2]], dim=-1)
        return x, terms, torch.logsumexp(terms, dim=-1).masked_fill(~mask, -1e4)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, features: torch.Tensor, neighbours: torch.Tensor | None = None
    ) -> torch.Tensor:
        x, _, node_log_cost = self.node_costs(tokens, mask, neighbours)
        additive = torch.logsumexp(node_log_cost, dim=1, keepdim=True)
        if self.readout.endswith("additive"):  # features stay a graph input (the service's ONNX interface), unused
            return additive + 0.0 * features[:, :1]
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
