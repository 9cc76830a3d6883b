"""One training run end to end: load the space (NB201, FBNet, OFA), apply a committed split, train, test the best checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

from training.data import ArchDataset, load_dataset
from training.splits import load_split
from training.trainer import TrainConfig, Trainer, evaluate_dataset, load_best


def train_run(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train (resuming if the run directory holds a checkpoint), then write ``metrics_test.json``."""
    data = load_dataset(cfg.targets)
    train_idx, val_idx, test_idx = load_split(Path(cfg.split), len(data.indices))
    start = time.time()
    trainer = Trainer(cfg, data.subset(train_idx), data.subset(val_idx), run_dir)
    summary = trainer.fit()
    train_seconds = time.time() - start
    result = {
        "run": str(run_dir),
        "seed": cfg.seed,
        "split": cfg.split,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "train_seconds": round(train_seconds, 1),
        **summary,
        "test": test_metrics(run_dir, data),
    }
    (Path(run_dir) / "metrics_test.json").write_text(json.dumps(result, indent=2))
    return result


def test_metrics(run_dir: Path, data: ArchDataset | None = None) -> dict[str, dict[str, float]]:
    """Metrics per target of a run's best checkpoint on its split's test rows, decoded as the exported network
    decodes (``Normaliser.decode``: floors included). ``data``: the run's space, when already loaded."""
    net, normaliser, cfg = load_best(run_dir)
    data = data if data is not None else load_dataset(cfg.targets)
    _, _, test_idx = load_split(Path(cfg.split), len(data.indices))
    return evaluate_dataset(net, data.subset(test_idx), normaliser)
