"""Training loop: AdamW, warm-up + linear decay, EMA, augmentation sampling, validation-only selection, resume.

A run lives in one directory: ``config.json``, ``last.pt`` (everything needed to resume, written at every
evaluation), ``best.pt`` (EMA weights with the best validation score), ``history.json`` (curves).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model.augment import sample_padded_orders
from model.tokenizer import EncodedGraphs, TokenBatch, tokenize
from training.data import ArchDataset
from training.losses import consistency, masked_mse, pairwise_difference
from training.metrics import regression_metrics
from training.network import FusionTransformer, NetworkConfig
from training.targets import TARGETS, prediction_floors


@dataclass
class TrainConfig:
    targets: list[str]
    split: str
    seed: int = 0
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    ema_decay: float = 0.99
    mse_weight: float = 1.0
    huber_delta: float | None = None  # None: squared error; a number: its Huber form beyond that (normalised units)
    pair_weight: float = 0.1
    consistency_weight: float = 0.5
    augment: bool = True
    augment_until: float = 1.0  # share of the epochs trained with augmentation / consistency; the rest: canonical order only
    eval_every: int = 5
    threads: int = 2
    network: dict = field(default_factory=dict)  # NetworkConfig overrides
    pretrained: str | None = None  # encoder weights from training.pretrain (None: random initialisation)

    def network_config(self) -> NetworkConfig:
        return NetworkConfig(n_targets=len(self.targets), **self.network)


TRANSFORMS = ("identity", "log", "log_error")


def forward_transform(y: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Target units -> regressed quantity, per column (kinds index into TRANSFORMS)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.select([kinds == 1, kinds == 2], [np.log(y), np.log(100.0 - y)], y)


def inverse_transform(z: np.ndarray, kinds: np.ndarray, floors: np.ndarray | None = None) -> np.ndarray:
    """Regressed quantity -> target units, then at least ``floors`` per column (``training.targets.prediction_floors``:
    chance for accuracies; None: accuracies at least 0 %, since 100 - exp(z) is unbounded below)."""
    value = np.select([kinds == 1, kinds == 2], [np.exp(z), np.maximum(100.0 - np.exp(z), 0.0)], z)
    return value if floors is None else np.maximum(value, floors)


@dataclass
class Normaliser:
    """Per-target transform (see TRANSFORMS) then affine normalisation, fitted on training data."""

    mean: np.ndarray
    std: np.ndarray
    kinds: np.ndarray
    floors: np.ndarray  # decoded values are at least these (``prediction_floors``)

    @classmethod
    def fit(cls, y: np.ndarray, targets: list[str]) -> Normaliser:
        kinds = np.array([TRANSFORMS.index(TARGETS[t].transform) for t in targets])
        z = forward_transform(y, kinds)
        return cls(np.nanmean(z, axis=0), np.nanstd(z, axis=0) + 1e-8, kinds, prediction_floors(targets))

    def encode(self, y: np.ndarray) -> np.ndarray:
        return (forward_transform(y, self.kinds) - self.mean) / self.std

    def decode(self, z: np.ndarray) -> np.ndarray:
        return inverse_transform(z * self.std + self.mean, self.kinds, self.floors)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "transforms": [TRANSFORMS[k] for k in self.kinds]}

    @classmethod
    def from_dict(cls, d: dict, targets: list[str]) -> Normaliser:
        """The normaliser a run saved; the floors come from the target registry (runs saved before them get them)."""
        kinds = np.asarray([TRANSFORMS.index(t) for t in d["transforms"]])
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), kinds, prediction_floors(targets))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_torch(batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(batch.tokens), torch.from_numpy(batch.mask), torch.from_numpy(batch.depth)


def warmup_linear_decay(optimiser: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )


HEAD_PREFIX = ("head.", "node_head.", "ln_nodes.")  # the readout: trained per task, never pre-trained


def load_encoder(net: FusionTransformer, path: Path) -> None:
    """Copy pre-trained weights (``training.pretrain``) into ``net``: all but the head must match by name and shape."""
    saved = torch.load(Path(path), weights_only=False)["encoder"]
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    wrong = sorted(set(own) ^ set(saved)) + [k for k in own.keys() & saved.keys() if own[k].shape != saved[k].shape]
    if wrong:
        raise ValueError(f"pre-trained encoder {path} does not fit this network: {wrong[:5]}")
    net.load_state_dict(saved, strict=False)


@torch.no_grad()
def predict_normalised(
    net: torch.nn.Module, encoded: EncodedGraphs, batch_size: int = 2048, orders: np.ndarray | None = None
) -> np.ndarray:
    """Predictions (normalised units) for graphs in their stored (canonical) order, or renumbered by ``orders``."""
    net.eval()
    outputs = []
    for start in range(0, len(encoded.op_ids), batch_size):
        rows = slice(start, start + batch_size)
        part = EncodedGraphs(encoded.op_ids[rows], encoded.adjacency[rows])
        outputs.append(net(*to_torch(tokenize(part, None if orders is None else orders[rows]))).numpy())
    return np.concatenate(outputs)


def evaluate_dataset(net: torch.nn.Module, data: ArchDataset, normaliser: Normaliser) -> dict[str, dict[str, float]]:
    pred = normaliser.decode(predict_normalised(net, data.encoded))
    return {name: regression_metrics(pred[:, t], data.y[:, t]) for t, name in enumerate(data.target_names)}


class Trainer:
    def __init__(self, cfg: TrainConfig, train: ArchDataset, val: ArchDataset, run_dir: Path) -> None:
        self.cfg, self.train, self.val, self.run_dir = cfg, train, val, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.normaliser = Normaliser.fit(train.y, cfg.targets)
        self.y = torch.from_numpy(np.nan_to_num(self.normaliser.encode(train.y))).float()
        self.present = torch.from_numpy(np.isfinite(train.y))
        self.orders = train.orders() if cfg.augment or cfg.consistency_weight > 0 else None
        self.net = FusionTransformer(cfg.network_config())
        if cfg.pretrained:
            load_encoder(self.net, Path(cfg.pretrained))
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = int(np.ceil(len(train.indices) / cfg.batch_size))
        total = cfg.epochs * self.steps_per_epoch
        warmup = max(1, int(cfg.warmup_frac * total))
        self.sched = warmup_linear_decay(self.opt, total, warmup)
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.best_score = -np.inf
        self.history: list[dict] = []
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        self._resume()

    def _sample_orders(self, rows: np.ndarray) -> np.ndarray:
        assert self.orders is not None
        length = self.train.encoded.op_ids.shape[1]  # graphs of fewer nodes keep their padding positions in place
        return sample_padded_orders([self.orders[r] for r in rows], self.rng, length)

    def _batch(self, rows: np.ndarray, orders: np.ndarray | None) -> TokenBatch:
        part = EncodedGraphs(self.train.encoded.op_ids[rows], self.train.encoded.adjacency[rows])
        return tokenize(part, orders)

    def _step(self, rows: np.ndarray) -> float:
        cfg = self.cfg
        self.net.train()
        y, present = self.y[rows], self.present[rows]
        orders_phase = self.epoch < cfg.augment_until * cfg.epochs
        view_a = self._batch(rows, self._sample_orders(rows) if cfg.augment and orders_phase else None)
        if cfg.consistency_weight > 0 and orders_phase:
            view_b = self._batch(rows, self._sample_orders(rows))
            both = TokenBatch(
                *(
                    np.concatenate([a, b])
                    for a, b in zip(
                        (view_a.tokens, view_a.mask, view_a.depth), (view_b.tokens, view_b.mask, view_b.depth), strict=True
                    )
                )
            )
            pred_a, pred_b = self.net(*to_torch(both)).chunk(2)
        else:
            pred_a, pred_b = self.net(*to_torch(view_a)), None
        loss = cfg.mse_weight * masked_mse(pred_a, y, present, cfg.huber_delta)
        if cfg.pair_weight > 0:
            loss = loss + cfg.pair_weight * pairwise_difference(pred_a, y, present, self.generator)
        if pred_b is not None:
            loss = loss + cfg.consistency_weight * consistency(pred_a, pred_b)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.ema.update_parameters(self.net)
        return float(loss.detach())

    def fit(self) -> dict:
        cfg = self.cfg
        n = len(self.train.indices)
        start = time.time()
        bar = tqdm(range(self.epoch, cfg.epochs), initial=self.epoch, total=cfg.epochs, desc=self.run_dir.name, mininterval=5)
        losses: list[float] = []
        for epoch in bar:
            perm = self.rng.permutation(n)
            for s in range(self.steps_per_epoch):
                losses.append(self._step(perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]))
            self.epoch = epoch + 1
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
                val = evaluate_dataset(self.ema.module, self.val, self.normaliser)
                taus = [m["kendall_tau"] for m in val.values() if np.isfinite(m["kendall_tau"])]
                score = float(np.mean(taus)) if taus else -1.0  # a target without validation labels has no tau
                self.history.append(
                    {
                        "epoch": self.epoch,
                        "train_loss": float(np.mean(losses)),
                        "val_score": score,
                        "val": {k: v["kendall_tau"] for k, v in val.items()},
                        "seconds": time.time() - start,
                    }
                )
                losses = []
                if score > self.best_score:
                    self.best_score = score
                    torch.save(
                        {"ema": self.ema.module.state_dict(), "epoch": self.epoch, "val_score": score}, self.run_dir / "best.pt"
                    )
                self._save_last()
                bar.set_postfix(val_tau=f"{score:.4f}", best=f"{self.best_score:.4f}")
        if not (self.run_dir / "best.pt").exists():  # resumed at the end of a run that never saved one
            torch.save({"ema": self.ema.module.state_dict(), "epoch": self.epoch, "val_score": None}, self.run_dir / "best.pt")
        return {"best_val_score": self.best_score, "epochs": self.epoch}

    def _save_last(self) -> None:
        state = {
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "history": self.history,
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.run_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.run_dir / "last.pt")
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        (self.run_dir / "normaliser.json").write_text(json.dumps(self.normaliser.to_dict()))

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.exists():
            return
        state = torch.load(path, weights_only=False)
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.epoch, self.best_score, self.history = state["epoch"], state["best_score"], state["history"]
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {self.run_dir} at epoch {self.epoch} (best validation score {self.best_score:.4f})")


def load_best(run_dir: Path) -> tuple[FusionTransformer, Normaliser, TrainConfig]:
    cfg_dict = json.loads((Path(run_dir) / "config.json").read_text())
    known = {f.name for f in fields(TrainConfig)}  # runs of older versions may carry fields since removed
    cfg = TrainConfig(**{k: v for k, v in cfg_dict.items() if k in known})
    net = FusionTransformer(cfg.network_config())
    net.load_state_dict(torch.load(Path(run_dir) / "best.pt", weights_only=False)["ema"])
    net.eval()
    normaliser = Normaliser.from_dict(json.loads((Path(run_dir) / "normaliser.json").read_text()), cfg.targets)
    return net, normaliser, cfg
