"""How far the shipped whole-network predictor is from its labels, against how far a fresh measurement is from them.

    python -m benchmarks.onnx_noise_floor --pair remeasure_2026-12-01e.jsonl remeasure_2026-12-01f.jsonl

The dataset's noise floor (median |pass A - pass B| / label) compares two passes of a network measured tens of
seconds apart, which share the host's state of the moment. The ``remeasure_*.jsonl`` files of the dataset measure
networks again hours or days later (``python -m training.netgen.remeasure``). Each file is one pass per network, on
a host whose speed may have moved since: every fresh value is divided by the file's median fresh / label ratio (the
day's speed, which no predictor can know), then compared with the label. Rows: each file's networks of the shipped
predictor's in-domain test split (the predictor never trained on them), by family group, with the same networks'
pass A / B floor, the predictor's error against the label, and against the fresh measurement.

Measuring windows: the host's speed also moves within one measuring session, minutes apart, and every label carries
the speed of its moment. The last table splits the measuring time into windows (by the pass-A timestamp) and
estimates each window's speed from the *validation* networks measured in it (median predictor / label ratio); the
test networks are then scored against their labels at their window's speed. It says how much of the in-domain error
is that drift, which no predictor of the architecture can learn; validation networks only, so no test label is used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from benchmarks.onnx_latency_versions import groups
from benchmarks.report import write_report
from training.latency_data import shipping_split, trained_ids_below
from training.latency_ship import predict_onnx_rows
from training.netgen.files import latest_records, read_jsonl

PREDICTORS = Path("model/predictors")


def ape(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return 100 * np.abs(value / reference - 1)


def stats(errors: np.ndarray) -> dict[str, float]:
    return {"mape": float(errors.mean()), "median": float(np.median(errors)), "p90": float(np.percentile(errors, 90))}


def fresh_values(file: Path, position: dict[int, int], label: np.ndarray) -> tuple[dict[int, float], float]:
    """Dataset row -> the file's fresh value divided by the host's speed that day (the median fresh / label ratio over
    every network of the file), and that speed."""
    fresh = {position[int(r["id"])]: float(r["min_ms"]) for r in read_jsonl(file) if int(r["id"]) in position}
    if not fresh:
        return {}, float("nan")
    speed = float(np.median([value / label[row] for row, value in fresh.items()]))
    return {row: value / speed for row, value in fresh.items()}, speed


def compare(name: str, fresh: dict[int, float], speed: str, label: np.ndarray, pass_ab: np.ndarray, pred: np.ndarray,
            rows: np.ndarray) -> dict:  # fmt: skip
    """Fresh values (dataset row -> ms) against the labels and predictions of those in ``rows`` (dataset rows)."""
    row = np.array(sorted(set(fresh) & set(rows.tolist())), dtype=int)
    fresh_ms = np.array([fresh[r] for r in row.tolist()])
    return {
        "file": name,
        "networks_in_file": len(fresh),
        "speed_vs_labels": speed,
        "rows": row,
        "relative_speed": fresh_ms / label[row],
        "fresh_vs_label": ape(fresh_ms, label[row]),
        "pass_a_vs_b": pass_ab[row],
        "predictor_vs_label": ape(pred[row], label[row]),
        "predictor_vs_fresh": ape(pred[row], fresh_ms),
    }


WINDOWS_S = (120, 300, 600, 1800)


def window_drift(pred: np.ndarray, label: np.ndarray, times: np.ndarray, val: np.ndarray, test: np.ndarray,
                 window_s: float, min_val: int = 3) -> dict:  # fmt: skip
    """The predictor's test error once each test label is put at its measuring window's speed: the median
    log(prediction / label) of the validation networks timed in the same window (windows with fewer than
    ``min_val`` of them are left uncorrected)."""
    bins = np.floor(times / window_s).astype(np.int64)
    residual = np.log(pred[val] / label[val])
    offsets = {b: float(np.median(residual[bins[val] == b])) for b in np.unique(bins[val])}
    offsets = {b: o for b, o in offsets.items() if (bins[val] == b).sum() >= min_val}
    offset = np.array([offsets.get(b, 0.0) for b in bins[test].tolist()])
    corrected = ape(pred[test] * np.exp(-offset), label[test])
    return {
        "window_s": window_s,
        "windows": len(offsets),
        "test_corrected": int(sum(b in offsets for b in bins[test].tolist())),
        "window_speed_std_pct": 100 * float(np.std(list(offsets.values()))) if offsets else 0.0,
        "corrected": stats(corrected),
    }


COLUMNS = ("pass_a_vs_b", "fresh_vs_label", "predictor_vs_label", "predictor_vs_fresh")


def _triple(result: dict[str, float]) -> str:
    return f"{result['mape']:.1f} / {result['median']:.1f} / {result['p90']:.1f}"


def markdown(report: dict) -> str:
    lines = [
        "# Whole-network predictor against fresh measurements of its test networks",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`. Predictor `{report['predictor']}` "
        f"{report['version']} on `{report['data']}`; rows are networks of its in-domain test split (seed 0) that a "
        "remeasure file measured again. Fresh values are divided by the file's median fresh / label ratio (the host's "
        "speed that day, `speed`). Percent errors: MAPE / median / p90.",
        "",
        f"Whole test split ({report['test_networks']} networks): predictor vs label MAPE {report['test']['mape']:.2f} %, "
        f"median {report['test']['median']:.2f} %; pass A vs B median {report['test_pass_ab']['median']:.2f} %.",
        "",
        "| file | speed | group | n | pass A vs B | fresh vs label | group speed | fresh vs label, group speed "
        "| predictor vs label | predictor vs fresh |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["files"]:
        for group, result in entry["groups"].items():
            cells = [_triple(result[c]) for c in COLUMNS]
            lines.append(
                f"| {entry['file']} | {entry['speed_vs_labels']} | {group} | {result['n']} | {cells[0]} | {cells[1]} "
                f"| {result['group_speed']:.3f} | {_triple(result['fresh_vs_label_group_speed'])} | {cells[2]} | {cells[3]} |"
            )
    for pair in report["pair_repeats"]:
        lines += [
            "",
            f"{pair['files'][0]} vs {pair['files'][1]} (the same {pair['n']} networks, each speed-corrected): "
            f"MAPE {pair['mape']:.1f} %, median {pair['median']:.1f} %, p90 {pair['p90']:.1f} %.",
        ]
    if report.get("windows"):
        lines += [
            "",
            "## Drift within a measuring session",
            "",
            f"Test networks scored against their labels at the speed of their measuring window, estimated from the "
            f"validation networks of the same window ({report['val_networks']} in all; at least 3 per window, else "
            "the label is left as it is). Percent errors: MAPE / median / p90.",
            "",
            "| window | windows | test networks corrected | spread of window speeds (std %) | predictor vs label |",
            "|---|---|---|---|---|",
            f"| none | - | - | - | {_triple(report['test'])} |",
        ]
        for w in report["windows"]:
            lines.append(
                f"| {w['window_s'] / 60:g} min | {w['windows']} | {w['test_corrected']} of {report['test_networks']} "
                f"| {w['window_speed_std_pct']:.1f} | {_triple(w['corrected'])} |"
            )
    lines += [
        "",
        "Pass A vs B is |A - B| / label, the dataset's noise floor (passes tens of seconds apart). Fresh vs label "
        "compares one later pass with the label (the mean of A and B). Group speed: the group's median fresh / label "
        "ratio against the file's (a host that slows memory-bound networks more than others shows it here); the next "
        "column corrects each group by its own speed instead. A predictor that knew each network's true "
        "latency exactly would still show about the fresh-vs-label error against the labels, less the fresh pass's "
        "own share of it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--name", default="cpu-ort-1t-v1")
    parser.add_argument("--files", nargs="*", help="remeasure files in --data (default: every remeasure_*.jsonl)")
    parser.add_argument(
        "--pair", nargs=2, action="append", default=[], metavar="FILE",
        help="two remeasure files of the same networks, also scored as one fresh label (their mean, as the dataset's)",
    )  # fmt: skip
    parser.add_argument(
        "--aligned-to", type=Path, default=None, help="the predictor's split places networks as in this dataset's split"
    )
    parser.add_argument("--min-networks", type=int, default=10, help="skip a file / group with fewer test networks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_noise_floor"))
    args = parser.parse_args(argv)

    card = json.loads((PREDICTORS / f"{args.name}.card.json").read_text())
    data, split = shipping_split(args.data, args.aligned_to, trained_ids_below(card["training"]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(PREDICTORS / f"{args.name}.onnx"), options)
    pred = predict_onnx_rows(session, data, np.arange(len(data.ids)), card["tokenizer"])[:, 0]
    label = data.latency_ms
    pass_ab = 100 * np.abs(data.pass_a_ms - data.pass_b_ms) / label
    position = {int(i): r for r, i in enumerate(data.ids.tolist())}
    records = latest_records(args.data)
    times = np.array([float(records[int(i)]["a"]["t"]) for i in data.ids.tolist()])
    files = [args.data / f for f in args.files] if args.files else sorted(args.data.glob("remeasure_*.jsonl"))
    fresh = {file.name: fresh_values(file, position, label) for file in files}
    for a, b in args.pair:
        for name in (a, b):
            fresh.setdefault(name, fresh_values(args.data / name, position, label))
    compared = [
        compare(name, values, f"{speed:.3f}", label, pass_ab, pred, split.test) for name, (values, speed) in fresh.items()
    ]
    repeats = []
    for a, b in args.pair:
        (first, speed_a), (second, speed_b) = fresh[a], fresh[b]
        both = {r: (first[r] + second[r]) / 2 for r in set(first) & set(second)}
        common = sorted(both)
        diff = ape(np.array([first[r] for r in common]), np.array([second[r] for r in common]))
        repeats.append({"files": [a, b], "n": len(common)} | stats(diff))
        compared.append(compare(f"{a} + {b} (mean)", both, f"{speed_a:.3f} / {speed_b:.3f}", label, pass_ab, pred, split.test))
    entries = []
    for result in compared:
        if len(result["rows"]) < args.min_networks:
            continue
        by_group = {}
        for group, mask in groups(data.families[result["rows"]]).items():
            if mask.sum() >= args.min_networks and (group == "all" or not mask.all()):  # no group twice
                relative = result["relative_speed"][mask]
                group_speed = float(np.median(relative))  # the group against the file's speed: not every family slows alike
                by_group[group] = (
                    {"n": int(mask.sum()), "group_speed": group_speed}
                    | {c: stats(result[c][mask]) for c in COLUMNS}
                    | {"fresh_vs_label_group_speed": stats(ape(relative, group_speed))}
                )
        entries.append(
            {"file": result["file"], "networks_in_file": result["networks_in_file"],
             "speed_vs_labels": result["speed_vs_labels"], "groups": by_group}
        )  # fmt: skip
    report = {
        "machine": describe_machine(),
        "command": f"python -m benchmarks.onnx_noise_floor {' '.join(sys.argv[1:] if argv is None else argv)}".strip(),
        "predictor": args.name,
        "version": card["version"],
        "data": str(args.data),
        "test_networks": int(len(split.test)),
        "test": stats(ape(pred[split.test], label[split.test])),
        "test_pass_ab": stats(pass_ab[split.test]),
        "files": entries,
        "pair_repeats": repeats,
        "val_networks": int(len(split.val)),
        "windows": [window_drift(pred, label, times, split.val, split.test, w) for w in WINDOWS_S],
    }
    write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
