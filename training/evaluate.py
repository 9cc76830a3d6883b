"""Evaluation of a trained run on its test split: metrics JSON, a markdown table, scatter and curve plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.parsers.nb201 import NB201_NUM_CELLS  # noqa: E402
from training.data import load_nb201  # noqa: E402
from training.metrics import regression_metrics  # noqa: E402
from training.splits import load_split  # noqa: E402
from training.targets import TARGETS  # noqa: E402
from training.trainer import load_best, predict_normalised  # noqa: E402


def evaluate_run(run_dir: Path, out_dir: Path | None = None) -> dict:
    """Test-split metrics of a run's best checkpoint; writes ``evaluation.json``, ``evaluation.md``, ``scatter.png``."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net, normaliser, cfg = load_best(run_dir)
    data = load_nb201(cfg.targets)
    _, _, test_idx = load_split(Path(cfg.split), NB201_NUM_CELLS)
    test = data.subset(test_idx)
    pred = normaliser.decode(predict_normalised(net, test.encoded))
    metrics = {name: regression_metrics(pred[:, t], test.y[:, t]) for t, name in enumerate(cfg.targets)}
    (out_dir / "evaluation.json").write_text(
        json.dumps({"run": str(run_dir), "n_test": len(test_idx), "metrics": metrics}, indent=2)
    )
    (out_dir / "evaluation.md").write_text(
        metrics_markdown(metrics, f"Test split of `{Path(cfg.split).name}` ({len(test_idx)} cells)")
    )
    scatter_plot(pred, test.y, cfg.targets, out_dir / "scatter.png")
    history = run_dir / "history.json"
    if history.exists():
        curves_plot(json.loads(history.read_text()), out_dir / "curves.png")
    return metrics


def metrics_markdown(metrics: dict[str, dict[str, float]], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| target | unit | Kendall tau-b | Spearman | MAPE % | Acc(10%) % |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        row = f"{m['kendall_tau']:.4f} | {m['spearman']:.4f} | {m['mape']:.2f} | {m['acc10']:.1f}"
        lines.append(f"| {name} | {TARGETS[name].unit} | {row} |")
    return "\n".join(lines) + "\n"


def scatter_plot(pred: np.ndarray, true: np.ndarray, names: list[str], path: Path) -> None:
    cols = min(5, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (t, name) in zip(axes.flat, enumerate(names), strict=False):
        keep = np.isfinite(true[:, t])
        g, p = true[keep, t], pred[keep, t]
        log = TARGETS[name].transform == "log"
        ax.scatter(g, p, s=2, alpha=0.25, rasterized=True)
        lo, hi = float(min(g.min(), p.min())), float(max(g.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(f"true ({TARGETS[name].unit})", fontsize=7)
        ax.set_ylabel(f"predicted ({TARGETS[name].unit})", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_plot(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history])
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    for name in history[0]["val"]:
        ax_val.plot(epochs, [h["val"][name] for h in history], label=name, linewidth=0.9)
    ax_val.plot(epochs, [h["val_score"] for h in history], color="black", linewidth=1.6, label="mean (selection)")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel("validation Kendall tau")
    ax_val.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
