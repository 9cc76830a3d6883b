"""Committed split files: disjoint train / validation / test index sets (test = every cell not in the others)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLIT_DIR = Path(__file__).parent / "splits"


def make_split(n_total: int, n_train: int, n_val: int, seed: int, space: str = "nb201") -> dict:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_total)
    train, val = np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val])
    return {
        "space": space,
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "train": train.tolist(),
        "val": val.tolist(),
        "test": "all indices not in train or val",
    }


def split_path(n_train: int, n_val: int, seed: int, space: str = "nb201") -> Path:
    """Indices are positions in the space's table sorted by index (NB201: the official index)."""
    return SPLIT_DIR / f"{space}_train{n_train}_val{n_val}_seed{seed}.json"


def load_split(path: Path, n_total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test index arrays; checks they are disjoint."""
    data = json.loads(Path(path).read_text())
    train, val = np.asarray(data["train"], dtype=np.int64), np.asarray(data["val"], dtype=np.int64)
    if np.intersect1d(train, val).size:
        raise ValueError(f"split {path}: train and validation overlap")
    test = np.setdiff1d(np.arange(n_total), np.concatenate([train, val]))
    return train, val, test


def write_split(n_total: int, n_train: int, n_val: int, seed: int, space: str = "nb201") -> Path:
    path = split_path(n_train, n_val, seed, space)
    path.parent.mkdir(parents=True, exist_ok=True)
    split = make_split(n_total, n_train, n_val, seed, space)
    path.write_text(
        json.dumps({k: v for k, v in split.items() if k not in ("train", "val")} | {"train": split["train"], "val": split["val"]})
        + "\n"
    )
    return path
