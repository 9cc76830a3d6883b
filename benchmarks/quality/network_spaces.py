"""FBNet and OFA MobileNetV3 latency (HELP's tables): the shipped predictor of each space against baselines.

Each shipped predictor (``model/predictors/{fbnet,ofa}-latency-v1``) was trained on its committed split (3,500 train /
500 validation networks, checkpoint chosen on validation); this scores it on the split's 1,000 test networks through
onnxruntime, next to baselines fitted on the same 3,500 training networks: ridge and gradient-boosted trees on the
one-hot layer encoding (layer position x choice), in log latency. One training seed of the transformer (the shipped
one); the baselines are deterministic given the split.

    python -m benchmarks.quality.network_spaces
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV

from benchmarks.machine import describe_machine
from model.card import PREDICTOR_DIR, ModelCard
from training.data import load_dataset
from training.metrics import regression_metrics
from training.splits import SPLIT_DIR, load_split
from training.uncertainty import predict_cells

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
PREDICTORS = ("fbnet-latency-v1", "ofa-latency-v1")
METRICS = ("kendall_tau", "spearman", "acc10", "mape")


def onehot_positions(op_ids: np.ndarray) -> np.ndarray:
    """One column per (position, op code) present in the data."""
    columns = [(p, c) for p in range(op_ids.shape[1]) for c in np.unique(op_ids[:, p]) if c >= 0]
    return np.stack([(op_ids[:, p] == c).astype(np.float64) for p, c in columns], axis=1)


def evaluate(name: str) -> dict:
    card_path = PREDICTOR_DIR / f"{name}.card.json"
    card = ModelCard.load(card_path)
    data = load_dataset(card.target_names)
    train, _, test = load_split(SPLIT_DIR / card.split["file"], len(data.indices))
    predicted = predict_cells(card_path.parent / card.onnx_file, data, test)
    features = onehot_positions(data.encoded.op_ids)
    out: dict = {"n_train": len(train), "n_test": len(test), "train_seconds": card.training.get("train_seconds"), "targets": {}}
    for t, target in enumerate(card.target_names):
        y = np.log(data.y[:, t])
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features[train], y[train])
        gbm = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, random_state=0).fit(features[train], y[train])
        out["targets"][target] = {
            "archcast": regression_metrics(predicted[:, t], data.y[test, t]),
            "ridge_onehot": regression_metrics(np.exp(ridge.predict(features[test])), data.y[test, t]),
            "gbm_onehot": regression_metrics(np.exp(gbm.predict(features[test])), data.y[test, t]),
        }
        print(f"{name} {target}: " + ", ".join(f"{m} {v['spearman']:.3f}" for m, v in out["targets"][target].items()),
              file=sys.stderr)  # fmt: skip
    return out


def markdown(results: dict, meta: dict) -> str:
    lines = [
        "# FBNet and OFA MobileNetV3 latency (HELP tables): shipped predictors against baselines",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. One split per space (3,500 train / 500 validation / "
        "1,000 test networks, seed 0); one transformer seed (the shipped predictor); baselines fitted on the same "
        "training networks. Bold = best of the row.",
        "",
    ]
    for name, result in results.items():
        lines += [f"## {name} ({result['n_test']} test networks; training {result['train_seconds']} s)", ""]
        header = "| device | " + " | ".join(f"{m} Spearman / Acc(10%)" for m in ("archcast", "ridge_onehot", "gbm_onehot"))
        lines += [header + " |", "|---|---|---|---|"]
        for target, methods in result["targets"].items():
            best = max(v["spearman"] for v in methods.values())
            cells = []
            for metrics in methods.values():
                text = f"{metrics['spearman']:.3f} / {metrics['acc10']:.1f} %"
                cells.append(f"**{text}**" if metrics["spearman"] == best else text)
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
        methods_all = ("archcast", "ridge_onehot", "gbm_onehot")
        means = {m: np.mean([v[m]["spearman"] for v in result["targets"].values()]) for m in methods_all}
        lines += ["", "Mean Spearman: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()), ""]
    return "\n".join(lines)


def main() -> None:
    results = {name: evaluate(name) for name in PREDICTORS if (PREDICTOR_DIR / f"{name}.card.json").exists()}
    meta = {"machine": describe_machine(), "command": "python -m benchmarks.quality.network_spaces"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "network_spaces.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    text = markdown(results, meta)
    (RESULTS / "network_spaces.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
