"""Predicted against measured, per target, for shipped cell predictors on their test cells (one PNG per predictor).

    python -m benchmarks.quality.scatter [nb201-latency-v1 fbnet-latency-v1 ofa-latency-v1 ...]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import stats

from model.card import PREDICTOR_DIR, ModelCard
from training.data import load_dataset
from training.splits import SPLIT_DIR, load_split
from training.uncertainty import predict_cells

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"


def scatter(name: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    card_path = PREDICTOR_DIR / f"{name}.card.json"
    card = ModelCard.load(card_path)
    data = load_dataset(card.target_names)
    _, _, test = load_split(SPLIT_DIR / card.split["file"], len(data.indices))
    predicted = predict_cells(card_path.parent / card.onnx_file, data, test)
    cols = math.ceil(math.sqrt(len(card.targets)))
    rows = math.ceil(len(card.targets) / cols)
    size = max(1.0, 2.0 / cols)  # a single panel gets room for the title
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols * size, 2.5 * rows * size), squeeze=False)
    for ax in axes.flat[len(card.targets) :]:
        ax.axis("off")
    for t, (ax, target) in enumerate(zip(axes.flat, card.targets, strict=False)):
        true, pred = data.y[test, t], predicted[:, t]
        keep = np.isfinite(true)
        ax.scatter(true[keep], pred[keep], s=1 if keep.sum() > 1000 else 4, alpha=0.25 if keep.sum() > 1000 else 0.6)
        lo, hi = float(np.min(true[keep])), float(np.max(true[keep]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.6)
        rho = stats.spearmanr(pred[keep], true[keep]).statistic
        label = target.name.removeprefix("latency_").removesuffix("_ms")
        ax.set_title(f"{label[:34]}\nSpearman {rho:.3f}", fontsize=6)
        ax.tick_params(labelsize=5)
    fig.suptitle(f"{name}: predicted (y) vs measured (x) on {len(test)} test architectures", fontsize=9)
    fig.tight_layout()
    path = out / f"scatter_{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = ["nb201-latency-v1", "fbnet-latency-v1", "ofa-latency-v1", "nb101-v1", "darts-v1"]
    parser.add_argument("names", nargs="*", default=shipped)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if (PREDICTOR_DIR / f"{name}.card.json").exists():
            print(scatter(name, RESULTS))


if __name__ == "__main__":
    main()
