"""FBNet and OFA MobileNetV3 latency (HELP's tables): the shipped predictor of each space against baselines.

Each shipped predictor (``model/predictors/{fbnet,ofa}-latency-v1``) was trained on its committed split (3,500 train /
500 validation networks, seed 0, checkpoint chosen on validation); seed 0 scores it on the split's 1,000 test networks
through onnxruntime. Every other seed trains the same configuration (the card's epochs, width, augmentation and, where
the card records one, label-free encoder pre-training with the card's steps on that seed) on its own committed split
(resumable; skipped when done) and scores its best checkpoint on that split's test networks.
Baselines per seed, fitted on the same training networks: ridge and gradient-boosted trees on the one-hot layer
encoding (layer position x choice), in log latency. Mean +- std over seeds.

    python -m benchmarks.quality.network_spaces [--seeds 0 1 2] [--workers 2] [--predictors fbnet-latency-v1]

``--predictors`` re-runs only the named predictors; the others keep their section (and its machine and command) from
the previous results file.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV

from benchmarks.machine import describe_machine
from model.card import PREDICTOR_DIR, ModelCard
from training.data import load_dataset
from training.metrics import regression_metrics
from training.pretrain import pretrain_encoder
from training.run import train_run
from training.splits import load_split, split_path, write_split
from training.targets import space_of
from training.trainer import TrainConfig
from training.uncertainty import predict_cells

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
PREDICTORS = ("fbnet-latency-v1", "ofa-latency-v1")
METRICS = ("kendall_tau", "spearman", "acc10", "mape")


def onehot_positions(op_ids: np.ndarray) -> np.ndarray:
    """One column per (position, op code) present in the data."""
    columns = [(p, c) for p in range(op_ids.shape[1]) for c in np.unique(op_ids[:, p]) if c >= 0]
    return np.stack([(op_ids[:, p] == c).astype(np.float64) for p, c in columns], axis=1)


def _encoder_path(run_dir: Path) -> Path:
    return run_dir / "pretrained_encoder.pt"


def _config(card: ModelCard, seed: int, run_dir: Path | None = None) -> TrainConfig:
    """The shipped predictor's training configuration on another seed's split (``run_dir`` holds its encoder)."""
    space = space_of(card.target_names)
    pretrained = card.training.get("pretraining") is not None and run_dir is not None
    n_train, n_val = card.split["n_train"], card.split["n_val"]
    return TrainConfig(
        targets=card.target_names,
        split=str(split_path(n_train, n_val, seed, space)),
        seed=seed,
        epochs=card.training["epochs"],
        threads=1,
        augment=card.training["augment"],
        augment_until=card.training.get("augment_until", 1.0),
        consistency_weight=card.training["consistency_weight"],
        pair_weight=card.training["pair_weight"],
        huber_delta=card.training.get("huber_delta"),
        network=_network(card),
        pretrained=str(_encoder_path(run_dir)) if pretrained else None,
    )


def _network(card: ModelCard) -> dict:
    return {k: v for k, v in card.training["network"].items() if k in ("d_model", "n_heads", "n_layers", "node_sum")}


def _train(job: tuple[str, int, str]) -> dict:
    """Train (or load, when finished with the same configuration) one seed's run; its seconds include pre-training."""
    name, seed, runs = job
    torch.set_num_threads(1)
    card = ModelCard.load(PREDICTOR_DIR / f"{name}.card.json")
    run_dir = Path(runs) / f"{name}_seed{seed}"
    cfg = _config(card, seed, run_dir)
    done = run_dir / "metrics_test.json"
    if done.exists():
        made = json.loads((run_dir / "config.json").read_text())
        if made != json.loads(json.dumps(asdict(cfg))):
            raise ValueError(f"{run_dir} was trained with another configuration than {name}'s card; delete it to re-train")
        return json.loads(done.read_text())
    pretrain_seconds = None
    if cfg.pretrained:
        steps = card.training["pretraining"]["steps"]
        path = pretrain_encoder(load_dataset(card.target_names), _network(card), Path(cfg.pretrained), steps=steps, seed=seed)
        pretrain_seconds = torch.load(path, weights_only=False)["seconds"]
    result = train_run(cfg, run_dir)
    result["pretrain_seconds"] = pretrain_seconds
    done.write_text(json.dumps(result, indent=1) + "\n")
    return result


def evaluate(name: str, seeds: list[int], trained: dict[tuple[str, int], dict]) -> list[dict]:
    """Archcast and baselines on each seed's split (the shipped ONNX for the card's own seed, else the trained run).

    The card, the dataset and the one-hot features are loaded once for all seeds.
    """
    card_path = PREDICTOR_DIR / f"{name}.card.json"
    card = ModelCard.load(card_path)
    data = load_dataset(card.target_names)
    features = onehot_positions(data.encoded.op_ids)
    per_seed = []
    for seed in seeds:
        train, _, test = load_split(Path(_config(card, seed).split), len(data.indices))
        run = trained.get((name, seed))
        if run is None:
            predicted = predict_cells(card_path.parent / card.onnx_file, data, test)
        seconds = card.training.get("train_seconds") if run is None else run["train_seconds"]
        shipped_pretraining = (card.training.get("pretraining") or {}).get("seconds")
        pretrain_seconds = shipped_pretraining if run is None else run.get("pretrain_seconds")
        out: dict = {"n_train": len(train), "n_test": len(test), "train_seconds": seconds,
                     "pretrain_seconds": pretrain_seconds, "targets": {}}  # fmt: skip
        for t, target in enumerate(card.target_names):
            y = np.log(data.y[:, t])
            ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features[train], y[train])
            gbm = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, random_state=seed)
            gbm.fit(features[train], y[train])
            out["targets"][target] = {
                "archcast": regression_metrics(predicted[:, t], data.y[test, t]) if run is None else run["test"][target],
                "ridge_onehot": regression_metrics(np.exp(ridge.predict(features[test])), data.y[test, t]),
                "gbm_onehot": regression_metrics(np.exp(gbm.predict(features[test])), data.y[test, t]),
            }
        print(f"{name} seed {seed}: scored", file=sys.stderr)
        per_seed.append(out)
    return per_seed


def aggregate(per_seed: list[dict]) -> dict:
    """mean and std over seeds of every (target, method, metric)."""
    first = per_seed[0]
    targets = {
        target: {
            method: {m: (float(np.mean([r["targets"][target][method][m] for r in per_seed])),
                         float(np.std([r["targets"][target][method][m] for r in per_seed]))) for m in METRICS}
            for method in methods
        }
        for target, methods in first["targets"].items()
    }  # fmt: skip
    return {"n_train": first["n_train"], "n_test": first["n_test"], "train_seconds": [r["train_seconds"] for r in per_seed],
            "pretrain_seconds": [r["pretrain_seconds"] for r in per_seed], "targets": targets}  # fmt: skip


def markdown(results: dict) -> str:
    """The report; each section names the machine and command that produced it (``results[name]["meta"]``)."""
    lines = [
        "# FBNet and OFA MobileNetV3 latency (HELP tables): ArchCast against baselines",
        "",
        "One committed split per seed and space (3,500 train / 500 validation / 1,000 test networks); seed 0 is the "
        "shipped predictor, the others are trained with its configuration; baselines fitted on the same training "
        "networks. Mean ± std over seeds. Bold = best mean of the row.",
        "",
    ]
    methods_all = ("archcast", "ridge_onehot", "gbm_onehot")
    for name, result in results.items():
        meta = result["meta"]
        seconds = ", ".join(f"{s:.0f}" for s in result["train_seconds"] if s is not None)
        pretrain = [s for s in result.get("pretrain_seconds", []) if s is not None]
        timing = f"transformer training {seconds} s" + (
            f" after label-free pre-training {', '.join(f'{s:.0f}' for s in pretrain)} s" if pretrain else ""
        )
        lines += [f"## {name} ({result['n_test']} test networks per seed; {timing})", "",
                  f"Machine: {meta['machine']}. Command: `{meta['command']}`. Seeds {meta['seeds']}.", ""]  # fmt: skip
        header = "| device | " + " | ".join(f"{m} Spearman | {m} Acc(10%)" for m in methods_all)
        lines += [header + " |", "|---|" + "---|" * (2 * len(methods_all))]
        for target, methods in result["targets"].items():
            best = max(v["spearman"][0] for v in methods.values())
            cells = []
            for metrics in methods.values():
                sp = f"{metrics['spearman'][0]:.3f} ± {metrics['spearman'][1]:.3f}"
                cells += [f"**{sp}**" if metrics["spearman"][0] == best else sp,
                          f"{metrics['acc10'][0]:.1f} ± {metrics['acc10'][1]:.1f}"]  # fmt: skip
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        means = {m: np.mean([v[m]["spearman"][0] for v in result["targets"].values()]) for m in methods_all}
        rows = result["targets"].values()
        wins = sum(v["archcast"]["spearman"][0] >= max(v[m]["spearman"][0] for m in methods_all) for v in rows)
        lines += ["", "Mean Spearman: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items())
                  + f". ArchCast has the best Spearman on {wins} of {len(result['targets'])} devices.", ""]  # fmt: skip
    return "\n".join(lines)


def _previous_results() -> dict:
    """Sections of the last results file, each with its own meta (files written before per-section meta get theirs)."""
    path = RESULTS / "network_spaces.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    return {name: {"meta": saved.get("meta"), **result} for name, result in saved["results"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="seeds trained in parallel, one torch thread each")
    parser.add_argument("--runs", default="runs/quality/network_spaces")
    parser.add_argument("--predictors", nargs="+", choices=PREDICTORS, default=list(PREDICTORS),
                        help="re-run only these; the others keep their section of the previous results file")  # fmt: skip
    args = parser.parse_args()
    names = [name for name in args.predictors if (PREDICTOR_DIR / f"{name}.card.json").exists()]
    jobs = []
    for name in names:
        card = ModelCard.load(PREDICTOR_DIR / f"{name}.card.json")
        for seed in args.seeds:
            if seed == card.split["seed"]:
                continue
            cfg = _config(card, seed)
            if not Path(cfg.split).exists():
                data = load_dataset(card.target_names)
                write_split(len(data.indices), card.split["n_train"], card.split["n_val"], seed, space_of(card.target_names))
            jobs.append((name, seed, args.runs))
    print(f"{len(jobs)} transformer runs to train or load (about 20-45 min each on this machine)", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        trained = {(job[0], job[1]): result for job, result in zip(jobs, pool.map(_train, jobs), strict=True)}
    meta = {"machine": describe_machine(), "command": "python -m benchmarks.quality.network_spaces " + " ".join(sys.argv[1:]),
            "seeds": args.seeds}  # fmt: skip
    results = _previous_results()
    for name in names:
        results[name] = {**aggregate(evaluate(name, args.seeds, trained)), "meta": meta}
    results = {name: results[name] for name in PREDICTORS if name in results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "network_spaces.json").write_text(json.dumps({"results": results}, indent=1) + "\n")
    text = markdown(results)
    (RESULTS / "network_spaces.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
