"""How noisy the NB201 tables are, read off twin cells, and the ceiling that noise puts on any predictor.

    python -m benchmarks.quality.label_noise [--out benchmarks/results/quality]

A cell whose edge 1->2 is ``none`` has a twin (``model.parsers.nb201_twin``): the same network with its two
intermediate nodes swapped, a different arch string and a different table row. 1,500 such pairs exist. Their labels
were measured (or trained) separately, so how far a pair's two values lie apart is the table's own noise, with no
model involved. From it, per target:

- the twins themselves: median and p90 |difference|, and the Spearman of one member against the other;
- an Acc(10 %) bound: on a pair whose two labels are more than 11/9 apart no single answer lies within 10 % of both,
  so a predictor that answers one network alike scores at most 1 of 2 there. The noise-free value of each network,
  used as the answer, scores no more than this; a twin's label used as the answer (``twin_acc10``) scores less, as it
  carries noise of its own, so the noise-free answer lies between the two;
- a Spearman ceiling: by classical test theory, two measurements of the same networks that correlate at r make one
  measurement correlate with the true values at sqrt(r); a Kendall ceiling from it through the normal-copula
  relations (tau = 2/pi asin(2 sin(pi rho_s / 6))).

Twin cells skew small (one edge is ``none``) and small cells are relatively noisier on some devices, so the two
Acc(10 %) figures are taken per decile of the label over the whole space and weighted by the decile's share of all
cells. The report sets ArchCast's test figures (``latency_pretraining_sizes.json``, ``accuracy_sizes.json`` next to
it) beside the ceilings and says, for the issue's mobile / edge goal devices, whether the goal is out of reach of any
predictor, met, or missed by the model. No training; about 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.machine import describe_machine
from benchmarks.quality.sample_sizes import LATENCY_GOAL, LATENCY_GOAL_SIZE, MOBILE_EDGE, recipe_of
from model.parsers import nb201_arch_str, nb201_twin, parse_nb201
from model.tables import nb201_arch_strings, read_csv_table
from training.targets import TARGETS

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
ACC10_WINDOW = (-math.log(1.1), -math.log(0.9))  # label = truth * exp(d): |truth - label| <= 10 % of the label
BOUND_RATIO = 1.1 / 0.9  # two labels further apart than this share no answer within 10 % of both
DECILES = 10
MIN_PAIRS_FOR_VERDICT = 500  # nn-Meter labels 2,000 cells: 131 pairs are too few to split into deciles
TWO_MODE_SHARE = 0.05  # the share of twin pairs more than 2x apart above which a table is called two-mode


def twin_pairs(arch_strs: tuple[str, ...]) -> np.ndarray:
    """(P, 2) official indices of twin cells, each pair once (lower index first)."""
    index_of = {arch: i for i, arch in enumerate(arch_strs)}
    pairs = []
    for i, arch in enumerate(arch_strs):
        ops = [node.op for node in parse_nb201(arch).nodes[1:-1]]
        twin = nb201_twin(ops)
        if twin is not None:
            j = index_of[nb201_arch_str(twin)]
            if j > i:
                pairs.append((i, j))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def target_values(name: str, n_cells: int) -> np.ndarray:
    """A target's value per official index, NaN where the table has none."""
    target = TARGETS[name]
    columns = read_csv_table(target.table)
    values = np.full(n_cells, np.nan)
    cells = np.asarray(columns["index"], dtype=np.int64)
    values[cells] = [float(v) if v != "" else np.nan for v in columns[target.column]]
    return values


def _deciles(reference: np.ndarray, x: np.ndarray, bins: int) -> np.ndarray:
    edges = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1))[1:-1]
    return np.searchsorted(edges, x)


def spearman_to_kendall(rho_s: float) -> float:
    """Kendall tau of a bivariate normal pair with Spearman rho_s (Greiner's and Pearson's relations)."""
    pearson = 2.0 * math.sin(math.pi * rho_s / 6.0)
    return 2.0 / math.pi * math.asin(min(1.0, pearson))


def noise_ceiling(values: np.ndarray, pairs: np.ndarray, kind: str) -> dict:
    """Twin statistics and the ceilings they set for one target; ``kind`` "latency" or "accuracy"."""
    a, b = values[pairs[:, 0]], values[pairs[:, 1]]
    keep = np.isfinite(a) & np.isfinite(b) & ((a > 0) & (b > 0) if kind == "latency" else True)
    a, b = a[keep], b[keep]
    labels = values[np.isfinite(values) & (values > 0 if kind == "latency" else True)]
    relative = np.abs(a - b) / ((a + b) / 2)
    twin_spearman = float(stats.spearmanr(a, b).statistic)
    out: dict = {
        "pairs": int(len(a)),
        "cells": int(len(labels)),
        "twin_median_abs_diff_pct": float(100 * np.median(relative)),
        "twin_p90_abs_diff_pct": float(100 * np.quantile(relative, 0.9)),
        "twin_identical_share": float(np.mean(a == b)),
        "twin_median_abs_diff_points": float(np.median(np.abs(a - b))),
        "twin_spearman": twin_spearman,
        # classical test theory: two measurements correlate at r, so one measurement correlates with the truth at sqrt(r)
        "ceiling_spearman": math.sqrt(max(0.0, twin_spearman)),
    }
    out["ceiling_kendall_tau"] = spearman_to_kendall(out["ceiling_spearman"])
    if kind != "latency":
        return out
    bins = DECILES if len(a) >= MIN_PAIRS_FOR_VERDICT else 3
    scale = np.log(labels)
    pair_bin, cell_bin = _deciles(scale, np.log(np.sqrt(a * b)), bins), _deciles(scale, scale, bins)
    bound, twin_acc10, uncovered = 0.0, 0.0, 0.0
    for k in range(bins):
        weight = float(np.mean(cell_bin == k))
        twins = pair_bin == k
        if not twins.any():  # no twin in this decile (a bimodal table): all twins stand in for it
            twins = np.ones(len(a), dtype=bool)
            uncovered += weight
        x, y = a[twins], b[twins]
        hi, lo = np.maximum(x, y), np.minimum(x, y)
        bound += weight * float(np.mean(np.where(hi <= BOUND_RATIO * lo, 1.0, 0.5)))
        twin_acc10 += weight * float(np.mean(np.concatenate([np.abs(x - y) / y, np.abs(y - x) / x]) <= 0.1))
    out.update(
        # a stopwatch's noise moves a label by percents; twins 2x apart mean a table with a fast and a slow mode
        twin_over_2x_share=float(np.mean(np.maximum(a, b) > 2 * np.minimum(a, b))),
        bins=bins,
        share_of_cells_in_bins_without_twins=uncovered,
        acc10_bound=100 * bound,
        twin_acc10=100 * twin_acc10,
    )
    return out


def _figure(method_name: str, summary: dict, size: str, key: tuple[str, str]) -> float | None:
    """The mean over seeds of one (target, metric) of one method at one training size, None when not run."""
    method = summary.get(method_name)
    if method is None or size not in method:
        return None
    target, metric = key
    return method[size]["targets"].get(target, {}).get(metric, [None])[0]


def verdict(row: dict, model: dict) -> str:
    """The mobile / edge latency goal for one device: out of reach of any predictor, met, or missed by the model."""
    if row["pairs"] < MIN_PAIRS_FOR_VERDICT:
        return "too few twins"
    spearman, acc10 = model.get("spearman"), model.get("acc10")
    if spearman is not None and acc10 is not None and spearman >= LATENCY_GOAL["spearman"] and acc10 >= LATENCY_GOAL["acc10"]:
        return "met"
    reasons = []
    if row["acc10_bound"] < LATENCY_GOAL["acc10"]:
        reasons.append("Acc(10 %) bound")
    if row["ceiling_spearman"] < LATENCY_GOAL["spearman"]:
        reasons.append("Spearman ceiling")
    return "out of reach: " + ", ".join(reasons) if reasons else "missed by the model"


def run() -> dict:
    arch_strs = nb201_arch_strings()
    pairs = twin_pairs(arch_strs)
    latency = json.loads((RESULTS / "latency_pretraining_sizes.json").read_text())["summary"]
    accuracy = json.loads((RESULTS / "accuracy_sizes.json").read_text())["summary"]
    rows: dict[str, dict] = {}
    for name, target in TARGETS.items():
        if not target.table.startswith("nb201/"):
            continue
        kind = "latency" if target.transform == "log" else "accuracy"
        row = noise_ceiling(target_values(name, len(arch_strs)), pairs, kind)
        row["kind"] = kind
        if kind == "latency":
            row["model"] = {
                size: {
                    m: _figure(recipe_of("latency_pretraining", latency, size), latency, size, (name, m))
                    for m in ("spearman", "acc10")
                }
                for size in (LATENCY_GOAL_SIZE, "7813")
            }
            if name in MOBILE_EDGE:
                row["goal"] = verdict(row, row["model"][LATENCY_GOAL_SIZE])
        else:
            row["model"] = {
                size: {"kendall_tau": _figure("archcast", accuracy, size, (name, "kendall_tau"))} for size in accuracy["archcast"]
            }
        rows[name] = row
        print(f"{name}: {row['pairs']} twins, median |diff| {row['twin_median_abs_diff_pct']:.2f} %", file=sys.stderr)
    return {"pairs": int(len(pairs)), "targets": rows}


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _latency_row(name: str, r: dict, with_pairs: bool) -> str:
    m, big = r["model"][LATENCY_GOAL_SIZE], r["model"]["7813"]
    cells = [name]
    if with_pairs:
        cells += [str(r["pairs"])]
    cells += [
        f"{r['twin_median_abs_diff_pct']:.1f} ({r['twin_p90_abs_diff_pct']:.1f})",
        f"{r['twin_spearman']:.3f}",
        f"{r['twin_acc10']:.1f} - {r['acc10_bound']:.1f}",
        f"{r['ceiling_spearman']:.3f}",
        *([f"{100 * r['twin_over_2x_share']:.1f}"] if with_pairs else []),
        f"{_num(m['spearman'], '.3f')} / {_num(m['acc10'], '.1f')}",
        f"{_num(big['spearman'], '.3f')} / {_num(big['acc10'], '.1f')}",
    ]
    if not with_pairs:
        cells.append(r["goal"])
    return "| " + " | ".join(cells) + " |"


def _two_mode_lines(rows: dict) -> list[str]:
    """A paragraph on the tables whose twins often lie more than 2x apart (two modes, not noise)."""
    modal = {t: r for t, r in rows.items() if r["kind"] == "latency" and r.get("twin_over_2x_share", 0.0) > TWO_MODE_SHARE}
    if not modal:
        return []
    named = "; ".join(f"{t} {100 * r['twin_over_2x_share']:.1f} %" for t, r in modal.items())
    return [
        f"Twins more than 2x apart in over {100 * TWO_MODE_SHARE:.0f} % of pairs: {named}. A stopwatch's noise moves a "
        "label by percents, so such a table has two modes, a fast one and a slow one. The other twin pairs sit in one "
        "mode together, so the mode mostly follows the network: a predictor lands within 10 % there only where it "
        "has learnt which networks run slow, whatever its Spearman.",
        "",
    ]


def markdown(result: dict, meta: dict) -> str:
    rows = result["targets"]
    goal_rows = {t: rows[t] for t in MOBILE_EDGE}
    out_of_reach = [t for t, r in goal_rows.items() if r["goal"].startswith("out of reach")]
    met = [t for t, r in goal_rows.items() if r["goal"] == "met"]
    missed = [t for t, r in goal_rows.items() if r["goal"] == "missed by the model"]
    at_ceiling = [
        t for t, r in rows.items()
        if r["kind"] == "latency" and r["pairs"] >= MIN_PAIRS_FOR_VERDICT
        and (r["model"][LATENCY_GOAL_SIZE]["spearman"] or 0.0) >= r["ceiling_spearman"] - 0.005
    ]  # fmt: skip
    n_latency = sum(1 for r in rows.values() if r["kind"] == "latency" and r["pairs"] >= MIN_PAIRS_FOR_VERDICT)
    lines = [
        "# Label noise of the NB201 tables, from twin cells, and the ceiling it sets",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}` (about 30 s). No training: the tables in "
        "`../shared/data` and the ArchCast test figures of `latency_pretraining_sizes.json` (the recipe of each size, mean over "
        "3 seeds) and `accuracy_sizes.json` next to this file.",
        "",
        f"**Twins.** A cell whose edge 1->2 is `none` computes the same network as the cell with its two intermediate "
        f"nodes swapped (`model.parsers.nb201_twin`: the same ops on the same tensors). NB201 holds {result['pairs']:,} "
        "such pairs under different arch strings and table rows, measured or trained separately. What separates a "
        "pair's two values is the table's noise; no model is involved.",
        "",
        "**Columns.** `twins |diff|`: median (p90) of |a - b| / mean over the pairs. `twin Spearman`: one member "
        "against the other. `Acc(10 %) of the true values`: what answering every network with its noise-free value "
        "would score against these labels lies in this range. The upper end is a bound: a pair further apart than "
        "11/9 has no answer within 10 % of both, so any predictor that answers one network alike scores at most half "
        "there. The lower end answers each twin with the other's label, which carries noise of its own. Both are "
        "taken per decile of the label over the space and weighted by the decile's share of all cells, because twin "
        "cells (one edge `none`) skew small. `Spearman ceiling`: sqrt(twin Spearman), the correlation of one "
        "measurement with the true values in classical test theory, good to about ±0.003 with 1,500 pairs.",
        "",
        f"ArchCast's 900-cell Spearman lies within 0.005 of the ceiling, or above it, on **{len(at_ceiling)} of "
        f"{n_latency}** latency settings: there the ranking is as good as these labels can show.",
        "",
        f"## The goal: Spearman >= {LATENCY_GOAL['spearman']} and Acc(10 %) >= {LATENCY_GOAL['acc10']:.0f} % with "
        f"{LATENCY_GOAL_SIZE} training cells (mobile / edge)",
        "",
        f"Of the {len(goal_rows)} devices, ArchCast meets the goal on **{len(met)}**. On **{len(out_of_reach)}** no "
        "predictor can meet it against these labels: the Spearman ceiling or the Acc(10 %) bound lies below the goal. "
        f"On **{len(missed)}** the labels allow it and the model misses it.",
        "",
        "| target | twins |diff| median (p90) % | twin Spearman | Acc(10 %) of the true values | Spearman ceiling "
        f"| ArchCast ({LATENCY_GOAL_SIZE}) Spearman / Acc(10 %) | ArchCast (7813) | goal |",
        "|---|---|---|---|---|---|---|---|",
        *(_latency_row(name, r, with_pairs=False) for name, r in goal_rows.items()),
        "",
        "Eyeriss and FPGA twins are identical to the last digit: those tables come from a cost model, not a stopwatch, "
        "which checks the twin construction. The phones with integer-millisecond labels (Pixel 2, Galaxy S7, "
        "Essential PH-1) are the noisiest: their twins are a median 9-13 % apart.",
        "",
        "## Every NB201 latency setting",
        "",
        "| target | twins | twins |diff| median (p90) % | twin Spearman | Acc(10 %) of the true values | Spearman ceiling "
        f"| twins > 2x apart % | ArchCast ({LATENCY_GOAL_SIZE}) | ArchCast (7813) |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_latency_row(name, r, with_pairs=True) for name, r in rows.items() if r["kind"] == "latency"),
        "",
        *_two_mode_lines(rows),
        f"nn-Meter labels 2,000 cells, which hold only {rows['latency_nnmeter_pixel4_cortexa76cpu_tflite21_ms']['pairs']} "
        "twin pairs: its Acc(10 %) range uses 3 bins instead of 10, and ArchCast lands well above its Spearman "
        "ceiling there, so those rows are no evidence either way.",
        "",
        "## NB201 accuracy (Kendall tau)",
        "",
        "Accuracy twins were trained separately. The Kendall ceiling is the Spearman ceiling through the normal-copula "
        "relations.",
        "",
        "| target | twins |diff| median (p90), % of the mean | median |diff|, points | twin Spearman | Kendall ceiling | "
        "ArchCast 1563 / 7813 cells |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if r["kind"] != "accuracy":
            continue
        lines.append(
            f"| {name} | {r['twin_median_abs_diff_pct']:.2f} ({r['twin_p90_abs_diff_pct']:.2f}) | "
            f"{r['twin_median_abs_diff_points']:.2f} | {r['twin_spearman']:.3f} | {r['ceiling_kendall_tau']:.3f} | "
            f"{_num(r['model']['1563']['kendall_tau'], '.3f')} / {_num(r['model']['7813']['kendall_tau'], '.3f')} |"
        )
    lines += ["", "![twin labels of the goal devices](label_noise.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path, arch_strs_pairs: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(4, 5, figsize=(16, 13))
    for ax, name in zip(axes.ravel(), MOBILE_EDGE, strict=True):
        values = target_values(name, 15625)
        a, b = values[arch_strs_pairs[:, 0]], values[arch_strs_pairs[:, 1]]
        keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        a, b = a[keep], b[keep]
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        line = np.geomspace(lo, hi, 50)
        ax.scatter(a, b, s=3, alpha=0.4)
        ax.plot(line, line, color="black", lw=0.8)
        ax.plot(line, line * BOUND_RATIO, color="red", lw=0.6, ls="--")
        ax.plot(line, line / BOUND_RATIO, color="red", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        r = result["targets"][name]
        ax.set_title(f"{name[8:-3][:34]}\n|diff| {r['twin_median_abs_diff_pct']:.1f} %, goal: {r['goal'][:22]}", fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=6)
    fig.suptitle("NB201 twin cells (one network, two table rows): label of one twin against the other, ms. "
                 "Dashed: 11/9 apart, beyond which no answer is within 10 % of both.", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run()
    meta = {"machine": describe_machine(), "command": "python -m benchmarks.quality.label_noise"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "label_noise.json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    text = markdown(result, meta)
    (args.out / "label_noise.md").write_text(text)
    plot(result, args.out / "label_noise.png", twin_pairs(nb201_arch_strings()))
    print(text)


if __name__ == "__main__":
    main()
