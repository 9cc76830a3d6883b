"""ONNX export of a trained run (dynamic batch and sequence axes, target units) plus its model card."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import onnx
import torch

from model.card import ModelCard, TargetCard
from model.ops import OP_NAMES
from model.parsers.darts import DARTS_OPS
from model.parsers.nb101 import NB101_OPS
from model.parsers.nb201 import NB201_OPS
from model.tokenizer import CODE_DIM, TOKEN_DIM
from training.data import data_checksums
from training.network import Denormalise
from training.run import test_metrics
from training.targets import TARGETS, space_of
from training.trainer import load_best

OPSET = 17


def space_ops(space: str) -> list[str]:
    """The op names a space's graphs use (those a predictor of that space accepts)."""
    if space == "nb201":
        return list(NB201_OPS)
    if space == "nb101":
        return list(NB101_OPS)
    if space == "darts":
        return [*DARTS_OPS, "add", "concat"]  # each intermediate state an add, each cell output a concat
    return [op for op in OP_NAMES if op.startswith(f"{space}_")]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_onnx(module: torch.nn.Module, path: Path) -> None:
    tokens = torch.zeros(2, 8, TOKEN_DIM)
    mask = torch.ones(2, 8, dtype=torch.bool)
    depth = torch.zeros(2, CODE_DIM)
    torch.onnx.export(
        module,
        (tokens, mask, depth),
        str(path),
        input_names=["tokens", "mask", "depth"],
        output_names=["prediction"],
        dynamic_axes={
            "tokens": {0: "batch", 1: "sequence"},
            "mask": {0: "batch", 1: "sequence"},
            "depth": {0: "batch"},
            "prediction": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)


def pretraining_facts(encoder: Path) -> dict:
    """What the label-free encoder the run started from was made with (``training.pretrain``)."""
    saved = torch.load(encoder, weights_only=False)
    facts = {k: saved[k] for k in ("steps", "seed", "space", "property_set", "graphs", "seconds") if k in saved}
    return {"file": encoder.name, **facts, "properties": saved["properties"]}


def select_on_validation(run_dirs: list[Path]) -> tuple[Path, list[dict]]:
    """The run with the best validation score (the score that chose each run's checkpoint), and every candidate's.

    The candidates must share one split: the choice may read validation, never test.
    """
    candidates = []
    for run_dir in run_dirs:
        metrics = json.loads((Path(run_dir) / "metrics_test.json").read_text())
        config = json.loads((Path(run_dir) / "config.json").read_text())
        candidates.append({"run": Path(run_dir).name, "split": Path(config["split"]).name,
                           "best_val_score": metrics["best_val_score"]})  # fmt: skip
    if len({c["split"] for c in candidates}) > 1:
        raise ValueError(f"runs to choose between must share one split, got {sorted({c['split'] for c in candidates})}")
    best = max(range(len(candidates)), key=lambda i: candidates[i]["best_val_score"])
    return Path(run_dirs[best]), candidates


def export_run(
    run_dir: Path, out_dir: Path, name: str, version: str, priority: int = 0, candidates: list[dict] | None = None
) -> tuple[Path, Path]:
    """Write ``<name>.onnx`` and ``<name>.card.json`` for the best checkpoint of a run.

    ``candidates``: the runs it was chosen from (``select_on_validation``), recorded in the card.
    """
    net, normaliser, cfg = load_best(run_dir)
    space = space_of(cfg.targets)
    kinds, floors = torch.as_tensor(normaliser.kinds), torch.as_tensor(normaliser.floors)
    module = Denormalise(net, torch.as_tensor(normaliser.mean), torch.as_tensor(normaliser.std), kinds, floors).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    export_onnx(module, onnx_path)
    metrics = json.loads((Path(run_dir) / "metrics_test.json").read_text())
    test = test_metrics(run_dir)  # scored again: the run's own scores may predate a change of decoding (floors)
    split = json.loads(Path(cfg.split).read_text())
    targets = [
        TargetCard(
            name=t,
            unit=TARGETS[t].unit,
            description=TARGETS[t].description,
            transform=TARGETS[t].transform,
            mean=float(normaliser.mean[i]),
            std=float(normaliser.std[i]),
            metrics={k: round(float(v), 4) for k, v in test[t].items()},
            floor=TARGETS[t].floor,
        )
        for i, t in enumerate(cfg.targets)
    ]
    card = ModelCard(
        name=name,
        version=version,
        spaces=[space, "graph"],  # graph: DAGs over the space's ops; reliable for graphs shaped like the space's
        ops=["input", "output", *space_ops(space)],
        targets=targets,
        onnx_file=onnx_path.name,
        priority=priority,
        split={
            "file": Path(cfg.split).name,
            "seed": split["seed"],
            "n_train": metrics["n_train"],
            "n_val": metrics["n_val"],
            "n_test": metrics["n_test"],
            "test": split["test"],
        },
        data_checksums=data_checksums(cfg.targets),
        git_commit=git_commit(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        training={
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "train_seconds": metrics["train_seconds"],
            "network": cfg.network_config().to_dict(),
            "augment": cfg.augment,
            **({"augment_until": cfg.augment_until} if cfg.augment_until < 1.0 else {}),
            "consistency_weight": cfg.consistency_weight,
            "pair_weight": cfg.pair_weight,
            **({"huber_delta": cfg.huber_delta} if cfg.huber_delta is not None else {}),
            "best_val_score": metrics["best_val_score"],
            "parameters": int(sum(p.numel() for p in net.parameters())),
            **({"pretraining": pretraining_facts(Path(cfg.pretrained))} if cfg.pretrained else {}),
            **({"selected_on_validation": candidates} if candidates and len(candidates) > 1 else {}),
        },
    )
    card_path = out_dir / f"{name}.card.json"
    card_path.write_text(card.to_json() + "\n")
    return onnx_path, card_path
