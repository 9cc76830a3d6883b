"""Training of the whole-network latency transformer on one split: log-latency MSE, pairwise ranking term,
information-flow-consistency augmentation + architecture-consistency loss, EMA, selection on validation MAPE.

Batches group networks of similar length (sorted buckets capped at ``max_tokens``) so padding stays small.
A run directory holds ``last.pt`` (resume), ``best.pt`` (EMA weights with the best validation MAPE) and
``history.json``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model.network_tokenizer import NETWORK_TOKEN_DIM, assemble_tokens
from training.latency_data import LatencyDataset, Split, random_topological_order
from training.latency_metrics import latency_metrics
from training.losses import consistency, pairwise_difference, squared_error
from training.network import NetworkConfig
from training.whole_network import WholeNetworkTransformer


@dataclass
class LatencyTrainConfig:
    seed: int = 0
    epochs: int = 20
    max_tokens: int = 8000
    max_batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    ema_decay: float = 0.98
    pair_weight: float = 0.2
    consistency_weight: float = 0.2
    huber_delta: float | None = None  # None: squared error of log-latency; a number: its Huber form beyond it (log units)
    augment: bool = True
    anchor: bool = False  # the supervised view keeps the exported order; only the consistency twin is renumbered
    augment_until: float = 1.0  # share of the epochs with renumbered orders / consistency; the rest: exported order only
    eval_every: int = 2
    threads: int = 1
    readout: str = "contextual"  # see training.whole_network.READOUTS
    init: str | None = None  # best.pt of a run with the same network (e.g. on another device) to fine-tune from
    # sized for 2 CPU cores: ~5 min per run on ~1,800 training networks
    network: dict = field(default_factory=lambda: {"d_model": 32, "n_heads": 2, "n_layers": 1, "dropout": 0.0, "queries": [2, 1]})

    def network_config(self) -> NetworkConfig:
        return NetworkConfig(n_targets=1, **{**self.network, "queries": tuple(self.network.get("queries", (4, 2, 1)))})


ORDERS: dict[str, dict] = {
    "random": {},  # the NAR-Former recipe: each network in a random valid order, plus a renumbered consistency twin
    "anchor": {"anchor": True},  # the exported order is supervised; only the consistency twin is renumbered
    "none": {"augment": False},  # the ablation: exported order, no consistency loss
    "random_then_exported": {"augment_until": 0.5},  # "random" for the first half of the epochs, then "none"
}
"""Node-order treatments in training (``LatencyTrainConfig`` overrides); prediction always reads the exported order."""


def make_batches(rows: np.ndarray, lengths: np.ndarray, max_tokens: int, max_batch: int, rng: random.Random) -> list[np.ndarray]:
    """Sort rows by length (with random tie-breaking), cut into batches under the token budget, shuffle them."""
    keys = [(int(lengths[r]), rng.random(), int(r)) for r in rows]
    keys.sort()
    batches, current, longest = [], [], 0
    for length, _, row in keys:
        if current and (max(longest, length) * (len(current) + 1) > max_tokens or len(current) >= max_batch):
            batches.append(np.array(current))
            current, longest = [], 0
        current.append(row)
        longest = max(longest, length)
    if current:
        batches.append(np.array(current))
    rng.shuffle(batches)
    return batches


def batch_tensors(
    data: LatencyDataset, rows: np.ndarray, rng: random.Random | None = None, hops: int = 0
) -> tuple[torch.Tensor, ...]:
    """Padded tokens, mask and features; with ``rng`` each network gets a random topological order. With ``hops``
    also the (B, L, L) neighbour mask of ``WholeNetworkTransformer`` (padding reads itself only)."""
    length = max(data.nodes[r].shape[0] for r in rows)
    tokens = np.zeros((len(rows), length, NETWORK_TOKEN_DIM), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=bool)
    neighbours = np.zeros((len(rows), length, length), dtype=bool) if hops else None
    for b, r in enumerate(rows):
        n = data.nodes[r].shape[0]
        src, dst = data.edges[r]
        order = random_topological_order(n, src, dst, rng) if rng is not None else None
        tokens[b, :n] = assemble_tokens(data.nodes[r], src, dst, order)
        mask[b, :n] = True
        if neighbours is not None:
            reach = data.neighbours(r, hops).toarray()
            neighbours[b, :n, :n] = reach if order is None else reach[np.ix_(order, order)]
            neighbours[b, np.arange(n, length), np.arange(n, length)] = True
    tensors = (torch.from_numpy(tokens), torch.from_numpy(mask), torch.from_numpy(data.features[rows]))
    return tensors if neighbours is None else (*tensors, torch.from_numpy(neighbours))


@torch.no_grad()
def predict_log(model: torch.nn.Module, data: LatencyDataset, rows: np.ndarray, max_tokens: int = 30000) -> np.ndarray:
    model.eval()
    out = np.zeros(len(rows))
    position = {int(r): i for i, r in enumerate(rows)}
    for batch in make_batches(rows, data.lengths, max_tokens, 256, random.Random(0)):
        pred = model(*batch_tensors(data, batch, hops=model.cfg.attention_hops)).squeeze(-1).numpy()
        out[[position[int(r)] for r in batch]] = pred
    return out


def train_latency(data: LatencyDataset, split: Split, cfg: LatencyTrainConfig, run_dir: Path, progress: bool = True) -> dict:
    """Train on ``split.train``, select on ``split.val``; returns test metrics of the selected checkpoint."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    y = np.log(data.latency_ms)
    model = WholeNetworkTransformer(cfg.network_config(), cfg.readout)
    hops = model.cfg.attention_hops
    if cfg.init is not None:  # a resumed run overwrites these weights from last.pt below
        model.load_state_dict(torch.load(cfg.init))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(make_batches(split.train, data.lengths, cfg.max_tokens, cfg.max_batch, random.Random(0)))
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_frac * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.02, 1 - max(0, s - warmup) / max(1, total - warmup))
    )
    state = {"epoch": 0, "best_val_mape": float("inf"), "best_epoch": -1, "history": []}
    last = run_dir / "last.pt"
    if last.exists():
        saved = torch.load(last, weights_only=False)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        rng.setstate(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
    started = time.time() - sum(h.get("seconds", 0) for h in state["history"][-1:])
    bar = tqdm(total=cfg.epochs, initial=state["epoch"], desc=split.name, disable=not progress)
    for epoch in range(state["epoch"], cfg.epochs):
        model.train()
        losses = []
        orders_phase = epoch < cfg.augment_until * cfg.epochs
        renumber = cfg.augment and not cfg.anchor and orders_phase
        twin_phase = (cfg.augment or cfg.anchor) and bool(cfg.consistency_weight) and orders_phase
        for rows in make_batches(split.train, data.lengths, cfg.max_tokens, cfg.max_batch, rng):
            target = torch.from_numpy(y[rows]).float()
            pred = model(*batch_tensors(data, rows, rng if renumber else None, hops)).squeeze(-1)
            loss = squared_error(pred - target, cfg.huber_delta).mean()
            if cfg.pair_weight and len(rows) > 1:
                every = torch.ones_like(target, dtype=torch.bool)
                loss = loss + cfg.pair_weight * pairwise_difference(pred, target, every, torch.default_generator)
            if twin_phase:
                twin = model(*batch_tensors(data, rows, rng, hops)).squeeze(-1)
                loss = loss + cfg.consistency_weight * consistency(pred, twin)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            ema.update_parameters(model)
            losses.append(loss.item())
        state["epoch"] = epoch + 1
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.time() - started}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            val = latency_metrics(np.exp(predict_log(ema.module, data, split.val)), data.latency_ms[split.val])
            record["val"] = val
            if val["mape"] < state["best_val_mape"]:
                state["best_val_mape"], state["best_epoch"] = val["mape"], epoch + 1
                torch.save(ema.module.state_dict(), run_dir / "best.pt")
            bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_mape=f"{val['mape']:.2f}")
        state["history"].append(record)
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "state": state,
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
            },
            last,
        )
        bar.update(1)
    bar.close()
    best = WholeNetworkTransformer(cfg.network_config(), cfg.readout)
    best.load_state_dict(torch.load(run_dir / "best.pt"))
    test_pred = np.exp(predict_log(best, data, split.test))
    val_pred = np.exp(predict_log(best, data, split.val))
    result = {
        "split": split.name,
        "config": asdict(cfg),
        "best_epoch": state["best_epoch"],
        "best_val_mape": state["best_val_mape"],
        "train_seconds": state["history"][-1]["seconds"],
        "test": latency_metrics(test_pred, data.latency_ms[split.test]),
        "test_pred_ms": test_pred.tolist(),
        "test_ids": data.ids[split.test].tolist(),
        "val_pred_ms": val_pred.tolist(),
    }
    (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
    (run_dir / "result.json").write_text(json.dumps(result))
    return result
