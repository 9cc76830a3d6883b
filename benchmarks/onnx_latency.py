"""Whole-network latency quality: noise floor, in-domain and leave-one-family-out, ArchCast vs baselines.

    python -m benchmarks.onnx_latency --data training/datasets/cpu-ort-1t --out benchmarks/results/onnx_latency

Every split is fitted from scratch per seed (selection on validation only; the held-out family never appears in
training or validation). Transformer runs live in ``--runs`` and resume; finished ones are reused. Writes
``<out>.json``, ``<out>.md`` and plots (``<out>_scatter.png``, ``<out>_lofo.png``, ``<out>_curve.png``).

``--merge A.json B.json ...`` trains nothing: it joins reports of the same protocol run with different seeds (on one
machine or several: each is named) into one table, mean ± std over all their seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.machine import describe_machine
from benchmarks.report import provenance_lines
from model.network_tokenizer import TOKENIZER_VERSION
from training.latency_baselines import fit_flops_loglog, fit_gbm, fit_kernel_sum, gbm_inputs, kind_sums
from training.latency_data import (
    LatencyDataset,
    Split,
    aligned_in_domain_split,
    in_domain_pretraining_split,
    in_domain_split,
    leave_out_split,
    load_latency_dataset,
    network_keys,
    pretraining_split,
    subsample_train,
    train_ids_below,
)
from training.latency_metrics import latency_metrics
from training.latency_trainer import ORDERS, LatencyTrainConfig, train_latency
from training.netgen.files import META
from training.whole_network import READOUTS

METHODS = ("archcast", "gbm", "kernel_sum", "flops_loglog")
BLEND = "archcast+gbm"
BLEND_ONE_W = "archcast+gbm, one w"  # one trees' share for every split of a protocol, chosen on their mean validation MAPE
BLEND_WEIGHTS = np.round(np.linspace(0, 1, 11), 2)
METRICS = ("mape", "acc10", "spearman")


def noise_floor(data: LatencyDataset) -> dict:
    diff = 100 * np.abs(data.pass_a_ms - data.pass_b_ms) / ((data.pass_a_ms + data.pass_b_ms) / 2)
    per_family = {f: float(np.median(diff[data.families == f])) for f in sorted(set(data.families))}
    return {"median_abs_pct": float(np.median(diff)), "p90_abs_pct": float(np.percentile(diff, 90)), "per_family": per_family}


def baseline_predictions(
    data: LatencyDataset, split: Split, sums: np.ndarray, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Test predictions of every baseline, and the trees' validation predictions (for the blend's weight)."""
    y = data.latency_ms
    flops = np.array([g.totals()["flops"] for g in data.graphs])
    fit_rows = np.concatenate([split.train, split.val])  # the baselines have no checkpoint to select
    gbm_x = gbm_inputs(data.features, sums)
    gbm = fit_gbm(gbm_x[split.train], y[split.train], seed)
    test = {
        "flops_loglog": fit_flops_loglog(flops[fit_rows], y[fit_rows])(flops[split.test]),
        "kernel_sum": fit_kernel_sum(sums[fit_rows], y[fit_rows])(sums[split.test]),
        "gbm": gbm(gbm_x[split.test]),
    }
    return test, gbm(gbm_x[split.val])


def blend_curve(archcast_val: np.ndarray, gbm_val: np.ndarray, true_val: np.ndarray) -> list[float]:
    """Validation MAPE (%) of the log-space blend archcast^(1-w) * gbm^w for each w of ``BLEND_WEIGHTS``."""
    return [float(100 * np.mean(np.abs(archcast_val ** (1 - w) * gbm_val**w / true_val - 1))) for w in BLEND_WEIGHTS]


def best_weight(curve: Sequence[float]) -> float:
    """The w of ``BLEND_WEIGHTS`` at the lowest point of a validation MAPE curve."""
    return float(BLEND_WEIGHTS[int(np.argmin(curve))])


def blend_weight(archcast_val: np.ndarray, gbm_val: np.ndarray, true_val: np.ndarray) -> float:
    """The trees' share w of the log-space blend archcast^(1-w) * gbm^w with the lowest validation MAPE."""
    return best_weight(blend_curve(archcast_val, gbm_val, true_val))


def one_blend_weight(curves: Sequence[Sequence[float]]) -> float:
    """The w whose validation MAPE, averaged over several splits' ``blend_curve``, is lowest: one choice for all."""
    return best_weight(np.mean(np.asarray(curves), axis=0))


def add_one_weight_blend(
    parts: Sequence[tuple[dict, np.ndarray, np.ndarray, np.ndarray]], in_domain_test_families: np.ndarray
) -> dict[str, float]:
    """Score the blend with one w per protocol (in-domain; leave-one-family-out), the w with the lowest validation
    MAPE averaged over that protocol's splits, into each split's metrics. Choosing one number on every validation
    family together is less noisy than choosing it on one family per split. Returns the w per protocol."""
    weights = {}
    for group in ("in_domain", "lofo"):
        members = [p for p in parts if (p[0]["protocol"] == "in_domain") == (group == "in_domain")]
        if not members:
            continue
        w = weights[group] = one_blend_weight([entry["blend_val_mape_per_weight"] for entry, *_ in members])
        for entry, archcast, gbm, true in members:
            blended = archcast ** (1 - w) * gbm**w
            entry["metrics"][BLEND_ONE_W] = latency_metrics(blended, true)
            for family, per_method in entry.get("per_family", {}).items():
                rows = in_domain_test_families == family
                per_method[BLEND_ONE_W] = latency_metrics(blended[rows], true[rows])
    return weights


def summarise(values: list[dict]) -> dict:
    out = {}
    for metric in METRICS:
        xs = [v[metric] for v in values if metric in v]
        if xs:
            out[metric] = {"mean": float(np.mean(xs)), "std": float(np.std(xs)), "n": len(xs)}
    return out


def fmt(summary: dict, metric: str) -> str:
    if metric not in summary:
        return "-"
    s = summary[metric]
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if metric == "spearman" else f"{s['mean']:.1f} ± {s['std']:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_latency"))
    parser.add_argument("--runs", type=Path, default=Path("runs/onnx_latency"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--lofo-seeds", type=int, nargs="+", default=None, help="seeds for leave-one-family-out (default --seeds)"
    )
    parser.add_argument("--epochs", type=int, default=40, help="in-domain epochs (40: chosen on validation over 20)")
    parser.add_argument("--lofo-epochs", type=int, default=10, help="leave-one-family-out epochs")
    parser.add_argument("--families", nargs="*", default=None, help="leave-one-family-out only these families")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--readout", choices=READOUTS, default="contextual", help="ArchCast readout (whole_network)")
    parser.add_argument(
        "--order",
        choices=tuple(ORDERS),
        default="random",
        help="node orders in training: random (each network in a random valid order, plus the consistency twin), "
        "anchor (the exported order, renumbered only in the consistency twin), none (the ablation: exported order, "
        "no consistency loss)",
    )
    parser.add_argument("--d-model", type=int, default=None, help="transformer width (default: LatencyTrainConfig's)")
    parser.add_argument("--layers", type=int, default=None, help="transformer layers (default: LatencyTrainConfig's)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: LatencyTrainConfig's)")
    parser.add_argument("--dropout", type=float, default=None, help="transformer dropout (default: LatencyTrainConfig's)")
    parser.add_argument(
        "--huber-delta",
        type=float,
        default=None,
        help="train on the Huber form of the squared log-latency error beyond this many log units (default: squared)",
    )
    parser.add_argument(
        "--attention-hops",
        type=int,
        default=None,
        help="a node's attention reads only nodes within this many graph hops (default: every node)",
    )
    parser.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW weight decay (default: LatencyTrainConfig's)"
    )
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="in-domain: keep this share of each family's training networks"
    )
    parser.add_argument(
        "--ids-below", type=int, default=None, help="only networks with smaller ids (the dataset before an extension)"
    )
    parser.add_argument(
        "--train-ids-below",
        type=int,
        default=None,
        help="in-domain: train only on networks with smaller ids; validation and test rows stay those of the whole "
        "dataset's split (what an extension adds, on one test set)",
    )
    parser.add_argument(
        "--aligned-to",
        type=Path,
        default=None,
        help="in-domain: place each network by id in this dataset's in-domain split (a dataset of the same networks "
        "measured on another CPU), so no network tested here was seen by that CPU's predictor",
    )
    parser.add_argument(
        "--val-family", action="store_true", help="leave-one-family-out validates on one other whole family"
    )
    parser.add_argument(
        "--pretrain-on",
        type=Path,
        default=None,
        help="first train on this dataset (the same generator's networks measured on another device), then train from "
        "those weights; leave-one-family-out without the held-out and the validation family, in-domain without the "
        "validation and test networks",
    )
    parser.add_argument(
        "--pretrain-epochs", type=int, default=None, help="epochs of --pretrain-on (default --lofo-epochs)"
    )
    parser.add_argument(
        "--protocol", choices=("all", "in_domain", "lofo"), default="all", help="run only part (parallel workers)"
    )
    parser.add_argument(
        "--blend",
        action="store_true",
        help="also score archcast^(1-w) * gbm^w, w in 0, 0.1 .. 1 chosen per split on its validation networks",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: join these reports (same protocol and options, different seeds) into --out",
    )
    args = parser.parse_args(argv)
    if args.merge:
        write(merge_reports(args.merge, "python -m benchmarks.onnx_latency " + " ".join(sys.argv[1:] if argv is None else argv)),
              args.out, args.runs)  # fmt: skip
        return
    methods = (*METHODS, BLEND, BLEND_ONE_W) if args.blend else METHODS

    started = time.time()
    data = load_latency_dataset(args.data, ids_below=args.ids_below)
    sums = np.stack([kind_sums(g) for g in data.graphs])
    families = sorted(set(data.families))
    lofo_seeds = args.lofo_seeds or args.seeds
    sizes = {
        "d_model": args.d_model,
        "n_layers": args.layers,
        "n_heads": args.heads,
        "dropout": args.dropout,
        "attention_hops": args.attention_hops,
    }
    network = {k: v for k, v in sizes.items() if v is not None}
    # in-domain: one split (seed 0) shared by every training seed, so the seeds form an honest ensemble on one test set
    split0 = in_domain_split(data.families, 0)
    split_label = split0.name
    if args.aligned_to is not None and args.protocol in ("all", "in_domain"):
        source = load_latency_dataset(args.aligned_to, progress=False, ids_below=args.ids_below)
        split0 = aligned_in_domain_split(data, source)
        split_label = f"{split0.name} (ids placed as in {args.aligned_to})"
    base = subsample_train(split0, data.families, args.train_fraction)
    if args.train_ids_below is not None:
        base = train_ids_below(base, data.ids, args.train_ids_below)
    jobs: list[tuple[str, Split, int, int]] = []
    if args.protocol in ("all", "in_domain"):
        jobs += [("in_domain", Split(base.name.replace("seed0", f"seed{s}"), base.train, base.val, base.test), s, args.epochs)
                 for s in args.seeds]  # fmt: skip
    for family in (args.families or families) if args.protocol in ("all", "lofo") else []:
        jobs += [
            (f"lofo:{family}", leave_out_split(data.families, family, s, val_family=args.val_family), s, args.lofo_epochs)
            for s in lofo_seeds
        ]

    pretrain = load_latency_dataset(args.pretrain_on, progress=False) if args.pretrain_on is not None else None
    pretrain_epochs = args.pretrain_epochs or args.lofo_epochs
    per_job: list[dict] = []
    blend_parts: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]] = []
    bar = tqdm(jobs, desc="splits", unit="split")
    for protocol, split, seed, epochs in bar:
        bar.set_postfix(split=split.name)
        cfg = LatencyTrainConfig(seed=seed, epochs=epochs, threads=args.threads, readout=args.readout, **ORDERS[args.order])
        cfg.network.update(network)
        if args.weight_decay is not None:
            cfg.weight_decay = args.weight_decay
        cfg.huber_delta = args.huber_delta
        if pretrain is not None:
            source_split = (
                pretraining_split(pretrain.families, data.families, split)
                if protocol.startswith("lofo:")
                else in_domain_pretraining_split(network_keys(pretrain), network_keys(data), split)
            )
            first_run = args.runs / source_split.name
            train_latency(pretrain, source_split, replace(cfg, epochs=pretrain_epochs), first_run, progress=False)
            cfg.init = str(first_run / "best.pt")
        result = train_latency(data, split, cfg, args.runs / split.name, progress=False)
        predictions, gbm_val = baseline_predictions(data, split, sums, seed)
        predictions["archcast"] = np.asarray(result["test_pred_ms"])
        weight, curve = None, None
        if args.blend:
            curve = blend_curve(np.asarray(result["val_pred_ms"]), gbm_val, data.latency_ms[split.val])
            weight = best_weight(curve)
            predictions[BLEND] = predictions["archcast"] ** (1 - weight) * predictions["gbm"] ** weight
        true = data.latency_ms[split.test]
        entry = {
            "protocol": protocol,
            "split": split.name,
            "seed": seed,
            "sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
            "archcast_train_seconds": result["train_seconds"],
            "archcast_best_epoch": result["best_epoch"],
            "archcast_val_mape": result["best_val_mape"],
            **({"blend_gbm_weight": weight, "blend_val_mape_per_weight": curve} if args.blend else {}),
            "metrics": {m: latency_metrics(p, true) for m, p in predictions.items()},
            # kept so that seed ensembles can be formed again when reports are merged
            "archcast_test_pred_ms": [float(f"{x:.6g}") for x in predictions["archcast"]],
            "test_true_ms": true.tolist(),
        }
        if args.blend:  # kept until every split of the protocol is in, for the one-w blend
            blend_parts.append((entry, predictions["archcast"], predictions["gbm"], true))
        if protocol == "in_domain":
            entry["per_family"] = {
                f: {
                    m: latency_metrics(p[data.families[split.test] == f], true[data.families[split.test] == f])
                    for m, p in predictions.items()
                }
                for f in families
            }
            if seed == args.seeds[0]:
                entry["scatter"] = {
                    "true": true.tolist(),
                    "pred": predictions["archcast"].tolist(),
                    "family": data.families[split.test].tolist(),
                }
        per_job.append(entry)
    one_weight = add_one_weight_blend(blend_parts, data.families[base.test]) if args.blend else {}

    meta = json.loads((args.data / META).read_text())
    report = {
        "command": "python -m benchmarks.onnx_latency " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "measured_on": meta.get("cpu", "unknown"),
        "device": meta.get("device", "cpu-ort-1t"),
        "readout": args.readout,
        "tokenizer": TOKENIZER_VERSION,
        "order": args.order,
        "pretrain_on": None
        if pretrain is None
        else {"data": str(args.pretrain_on), "epochs": pretrain_epochs},
        "methods": list(methods),
        "network": {**LatencyTrainConfig().network, **network},
        "weight_decay": LatencyTrainConfig().weight_decay if args.weight_decay is None else args.weight_decay,
        "huber_delta": args.huber_delta,
        "train_fraction": args.train_fraction,
        "in_domain_split": split_label,
        "lofo_validation": "one other whole family" if args.val_family else "10 % of the other families' networks",
        "dataset": {"networks": len(data), "families": {f: int((data.families == f).sum()) for f in families}},
        "ids_below": args.ids_below,
        "noise_floor": noise_floor(data),
        **summaries(per_job, methods, families),
        "seconds": time.time() - started,
        "runs": per_job,
        **({"blend_one_weight": one_weight} if one_weight else {}),
        **seed_ensembles(per_job),
    }
    write(report, args.out, args.runs)


def seed_ensembles(runs: Sequence[dict]) -> dict:
    """ArchCast's seeds of one test set as one ensemble (geometric mean of their predictions), as a shipped predictor
    is built: ``in_domain_ensemble`` and, per held-out family, ``lofo_ensemble`` with its ``lofo_ensemble_average``.
    A protocol gets one only if every run of it kept its predictions (reports before they were kept did not), so an
    average never silently covers fewer families than the table."""

    def ensemble(group: list[dict]) -> dict | None:
        if len(group) < 2 or any("archcast_test_pred_ms" not in j for j in group):
            return None
        true = np.asarray(group[0]["test_true_ms"])
        if any(not np.array_equal(np.asarray(j["test_true_ms"]), true) for j in group[1:]):
            return None
        return latency_metrics(np.exp(np.mean(np.log([j["archcast_test_pred_ms"] for j in group]), axis=0)), true)

    out: dict = {}
    if e := ensemble([j for j in runs if j["protocol"] == "in_domain"]):
        out["in_domain_ensemble"] = e
    lofo = [j for j in runs if j["protocol"].startswith("lofo:")]
    if lofo:
        families = dict.fromkeys(j["protocol"].removeprefix("lofo:") for j in lofo)
        per_family = {f: ensemble([j for j in lofo if j["protocol"] == f"lofo:{f}"]) for f in families}
        if all(per_family.values()):
            out["lofo_ensemble"] = per_family
            out["lofo_ensemble_average"] = {
                m: float(np.mean([e[m] for e in per_family.values()])) for m in METRICS
            }
    return out


def summaries(per_job: list[dict], methods: Sequence[str], families: Sequence[str]) -> dict:
    """``in_domain``, ``lofo`` (per held-out family) and ``lofo_average``: each method's metrics, mean ± std over seeds."""
    lofo = {
        f: {m: summarise([j["metrics"][m] for j in per_job if j["protocol"] == f"lofo:{f}"]) for m in methods}
        for f in families
        if any(j["protocol"] == f"lofo:{f}" for j in per_job)
    }
    return {
        "in_domain": {m: summarise([j["metrics"][m] for j in per_job if j["protocol"] == "in_domain"]) for m in methods},
        "lofo": lofo,
        "lofo_average": {
            m: {metric: float(np.mean([lofo[f][m][metric]["mean"] for f in lofo])) for metric in METRICS}
            for m in methods
            if lofo
        },
    }


MERGE_MUST_AGREE = (
    "device", "measured_on", "readout", "tokenizer", "order", "pretrain_on", "methods", "network", "weight_decay",
    "train_fraction", "in_domain_split", "lofo_validation", "dataset", "ids_below", "huber_delta",
)  # fmt: skip


def merge_reports(paths: Sequence[Path], command: str) -> dict:
    """One report from several of the same protocol and options with different seeds: their runs joined, the
    summaries and seed ensembles recomputed (ensembles only where every run kept its predictions), each part's
    machine and command named."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    first = reports[0]
    for path, other in zip(paths[1:], reports[1:], strict=True):
        differs = [k for k in MERGE_MUST_AGREE if other.get(k) != first.get(k)]
        if differs:
            raise SystemExit(f"--merge: {path} differs from {paths[0]} in {', '.join(differs)}")
    runs: list[dict] = []
    for path, report in zip(paths, reports, strict=True):
        for job in report["runs"]:
            if any((j["protocol"], j["seed"]) == (job["protocol"], job["seed"]) for j in runs):
                raise SystemExit(f"--merge: {job['protocol']} seed {job['seed']} is in two reports (again in {path})")
            runs.append(job)
    parts = [
        f"seeds {sorted({j['seed'] for j in r['runs']})} on {r['machine']} (`{r['command']}`)"
        for r in reports
    ]
    merged = {k: v for k, v in first.items() if k not in ("in_domain_ensemble", "lofo_ensemble", "lofo_ensemble_average")}
    merged.update(
        command=command,
        machine="; ".join(dict.fromkeys(r["machine"] for r in reports)),
        seconds=float(sum(r["seconds"] for r in reports)),
        runs=runs,
        merged_from=[str(p) for p in paths],
        note="Merged (`--merge`) from " + "; ".join(parts) + ". Training on different CPUs is not bit-identical, so "
        "a seed run on another machine is another draw of the same protocol.",
        **summaries(runs, first["methods"], first["dataset"]["families"]),
        **seed_ensembles(runs),
    )
    return merged


def write(report: dict, out: Path, runs: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown(report))
    plots(report, out, runs)
    print(markdown(report))


def pretraining_lines(pretrain_on: dict | None) -> list[str]:
    """The report's sentence on ``--pretrain-on``, if it was used."""
    if not pretrain_on:
        return []
    return [
        f"Each split first trained {pretrain_on['epochs']} epochs on `{pretrain_on['data']}` (the same generator's "
        "networks measured on another device), then trained from those weights (`--pretrain-on`): a leave-one-family-out "
        "split without its held-out and its validation family, its checkpoint chosen on the validation family's labels "
        "there; an in-domain split without its validation and test networks, its checkpoint chosen on the validation "
        "networks' labels there. That first training is not in the times above.",
        "",
    ]


def markdown(report: dict) -> str:
    noise = report["noise_floor"]
    methods = report.get("methods", METHODS)
    lines = [
        f"# Whole-network latency ({report.get('device', 'cpu-ort-1t')}): ArchCast vs baselines",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. {report['dataset']['networks']} measured networks, "
        f"{len(report['dataset']['families'])} families, latencies measured on {report.get('measured_on', 'unknown')}. "
        f"This invocation {report['seconds'] / 60:.0f} min; ArchCast training summed over its "
        f"{len(report['runs'])} splits (reused runs included, 1 thread each) "
        f"{sum(j['archcast_train_seconds'] for j in report['runs']) / 60:.0f} min.",
        "",
        f"ArchCast readout: `{report.get('readout', 'contextual')}` (`training/whole_network.py`); whole-network "
        f"tokenizer {report.get('tokenizer', 'not recorded')} (`model/network_tokenizer.py`); node orders in "
        f"training: `{report.get('order', 'random')}` (`--order`); leave-one-family-out "
        f"checkpoints chosen on {report.get('lofo_validation', 'random networks of the other families')}"
        + (f"; loss: the Huber form of the squared log-latency error beyond {report['huber_delta']} (`--huber-delta`)."
           if report.get("huber_delta") is not None else "."),
        "",
        *pretraining_lines(report.get("pretrain_on")),
        *provenance_lines(report, "the dataset"),
        "Noise floor (pass A vs pass B, median |diff| / mean): "
        f"**{noise['median_abs_pct']:.2f} %** (p90 {noise['p90_abs_pct']:.2f} %).",
        "",
    ]
    in_domain_runs = [j for j in report["runs"] if j["protocol"] == "in_domain"]
    if in_domain_runs:
        sizes = in_domain_runs[0]["sizes"]
        split = report.get("in_domain_split", "in_domain_seed0")
        lines += ["## In-domain (mean ± std over seeds)", "",
                  f"Split `{split}`" + (": random 70/10/20 within every family" if split == "in_domain_seed0" else "")
                  + f"; {sizes['train']} / {sizes['val']} / {sizes['test']} networks. Every seed uses this split.", "",
                  "| method | MAPE % | Acc(10 %) % | Spearman |", "|---|---|---|---|"]  # fmt: skip
        for m in methods:
            s = report["in_domain"][m]
            lines.append(f"| {m} | {fmt(s, 'mape')} | {fmt(s, 'acc10')} | {fmt(s, 'spearman')} |")
        if "in_domain_ensemble" in report:
            e = report["in_domain_ensemble"]
            lines.append(
                f"| archcast, ensemble of the {len(in_domain_runs)} seeds | {e['mape']:.1f} | {e['acc10']:.1f} "
                f"| {e['spearman']:.3f} |"
            )
        lines += ["", "In-domain per family (MAPE % / Acc(10 %) % / Spearman, mean over seeds):", ""]
        lines.append("| family | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for family in in_domain_runs[0]["per_family"]:
            cells = []
            for m in methods:
                s = summarise([j["per_family"][family][m] for j in in_domain_runs])
                cells.append(f"{s['mape']['mean']:.1f} / {s['acc10']['mean']:.0f} / {s['spearman']['mean']:.3f}")
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
    if report["lofo"]:
        lines += ["", "## Leave-one-family-out (MAPE % mean ± std over seeds; Spearman in brackets)", ""]
        lines.append("| held-out family | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for family, per_method in report["lofo"].items():
            cells = [
                f"{fmt(per_method[m], 'mape')} ({per_method[m].get('spearman', {}).get('mean', float('nan')):.3f})"
                for m in methods
            ]
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        avg = report["lofo_average"]
        lines.append(
            "| **average** | " + " | ".join(f"**{avg[m]['mape']:.1f}** ({avg[m]['spearman']:.3f})" for m in methods) + " |"
        )
        lines += ["", "## Leave-one-family-out Acc(10 %) (% of held-out networks within 10 %; mean ± std over seeds)", ""]
        lines.append("| held-out family | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for family, per_method in report["lofo"].items():
            lines.append(f"| {family} | " + " | ".join(fmt(per_method[m], "acc10") for m in methods) + " |")
        lines.append("| **average** | " + " | ".join(f"**{avg[m]['acc10']:.1f}**" for m in methods) + " |")
        if "lofo_ensemble" in report:
            e, ea = report["lofo_ensemble"], report["lofo_ensemble_average"]
            lines += [
                "",
                "ArchCast with each held-out family's seeds as one ensemble (geometric mean; how a shipped predictor is "
                f"built): average MAPE **{ea['mape']:.1f} %**, Acc(10 %) {ea['acc10']:.1f} %, Spearman {ea['spearman']:.3f}. "
                "Per family (MAPE %): " + ", ".join(f"{f} {v['mape']:.1f}" for f, v in e.items()) + ".",
            ]
    if report.get("blend_one_weight"):
        lines += [
            "",
            f"`{BLEND}`: archcast^(1-w) * gbm^w, w chosen per split on its validation networks; `{BLEND_ONE_W}`: one w "
            "per protocol, chosen on the mean validation MAPE over its splits: "
            + ", ".join(f"{group} w = {w:.1f}" for group, w in report["blend_one_weight"].items())
            + ".",
        ]
    lines += ["", "Per-family noise floor (%): " + ", ".join(f"{f} {v:.2f}" for f, v in noise["per_family"].items()), ""]
    return "\n".join(lines)


def plots(report: dict, out: Path, runs: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scatter = next((j["scatter"] for j in report["runs"] if "scatter" in j), None)
    if scatter:
        fig, ax = plt.subplots(figsize=(6, 6))
        true, pred, fam = np.array(scatter["true"]), np.array(scatter["pred"]), np.array(scatter["family"])
        for f in sorted(set(fam)):
            ax.scatter(true[fam == f], pred[fam == f], s=6, label=f)
        lo, hi = true.min() * 0.8, true.max() * 1.2
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="measured latency (ms)",
            ylabel="predicted latency (ms)",
            title=f"ArchCast in-domain test (seed 0), {report.get('device', 'cpu-ort-1t')}",
        )
        ax.legend(fontsize=6, markerscale=2)
        fig.savefig(out.with_name(out.name + "_scatter.png"), dpi=120, bbox_inches="tight")
        plt.close(fig)
    if report["lofo"]:
        fig, ax = plt.subplots(figsize=(9, 4))
        families = list(report["lofo"])
        methods = report.get("methods", METHODS)
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            ax.bar(np.arange(len(families)) + i * width, [report["lofo"][f][m]["mape"]["mean"] for f in families], width, label=m)
        ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families, rotation=45, ha="right")
        ax.set(ylabel="MAPE % (held-out family)", yscale="log", title="Leave-one-family-out MAPE")
        ax.legend(fontsize=7)
        fig.savefig(out.with_name(out.name + "_lofo.png"), dpi=120, bbox_inches="tight")
        plt.close(fig)
    first = next((j for j in report["runs"] if j["protocol"] == "in_domain"), None)
    history_path = runs / first["split"] / "history.json" if first else None
    if history_path and history_path.exists():
        history = json.loads(history_path.read_text())
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label="train loss")
        ax2 = ax.twinx()
        val = [(h["epoch"], h["val"]["mape"]) for h in history if "val" in h]
        ax2.plot(*zip(*val, strict=True), color="C1", label="val MAPE %")
        ax.set(xlabel="epoch", ylabel="train loss", yscale="log", title=f"training curve ({first['split']})")
        ax2.set_ylabel("validation MAPE %")
        fig.legend(fontsize=7)
        fig.savefig(out.with_name(out.name + "_curve.png"), dpi=120, bbox_inches="tight")
        plt.close(fig)


if __name__ == "__main__":
    main()
