"""One training run end to end: load the space (NB201, FBNet, OFA), apply a committed split, train, test the best checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

from training.data import load_dataset
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
    net, normaliser, _ = load_best(run_dir)
    test = evaluate_dataset(net, data.subset(test_idx), normaliser)
    result = {
        "run": str(run_dir),
        "seed": cfg.seed,
        "split": cfg.split,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "train_seconds": round(train_seconds, 1),
        **summary,
        "test": test,
    }
    (Path(run_dir) / "metrics_test.json").write_text(json.dumps(result, indent=2))
    return result
