"""Do a dataset extension's labels agree with the earlier ones? The shipped predictor bridges them.

    python -m benchmarks.onnx_label_consistency --from-id 4950 --rev b2e5570 --out benchmarks/results/onnx_label_consistency_4950

The whole-network predictor shipped at ``--rev`` (default: the working tree's; trained on networks below its card's id
bound, ``training.latency_data.trained_ids_below``) predicts the extension's networks (ids from ``--from-id``) and the
earlier networks of the same families that sat in its own test split, which it never trained on either. Per family,
the median label / prediction of both groups: new labels measured while the host ran slower or faster than when the
predictor's labels were made show up as a gap between the two.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from benchmarks.onnx_latency_versions import CARD, MODEL, git_bytes
from training.latency_data import in_domain_split, load_latency_dataset, trained_ids_below
from training.latency_metrics import latency_metrics
from training.latency_ship import predict_onnx_rows


def family_offsets(labels: np.ndarray, predictions: np.ndarray, families: np.ndarray) -> dict[str, dict[str, float]]:
    """Per family: count, median label / prediction - 1 (%) and MAPE (%)."""
    out = {}
    for family in sorted(set(families.tolist())):
        mask = families == family
        ratio = labels[mask] / predictions[mask]
        out[family] = {
            "n": int(mask.sum()),
            "median_offset_pct": 100 * float(np.median(ratio) - 1),
            "mape_pct": latency_metrics(predictions[mask], labels[mask])["mape"],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--name", default="cpu-ort-1t-v1")
    parser.add_argument("--from-id", type=int, required=True, help="first network id of the extension")
    parser.add_argument("--rev", default=None, help="git revision to read the predictor from (default: working tree)")
    parser.add_argument("--out", type=Path, default=None, help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)

    card_path, model_path = CARD.format(name=args.name), MODEL.format(name=args.name)
    read = (lambda path: Path(path).read_bytes()) if args.rev is None else (lambda path: git_bytes(args.rev, path))
    card = json.loads(read(card_path))
    trained_below = trained_ids_below(card["training"])
    if args.from_id < trained_below:
        raise SystemExit(f"{args.name} trained on ids below {trained_below}: the extension must start at or after it")
    data = load_latency_dataset(args.data, progress=False)
    below = np.flatnonzero(data.ids < trained_below)
    earlier_test = below[in_domain_split(data.families[below], 0).test]
    new = np.flatnonzero(data.ids >= args.from_id)
    if not len(new):
        raise SystemExit(f"no network with id >= {args.from_id} in {args.data}")
    earlier_test = earlier_test[np.isin(data.families[earlier_test], data.families[new])]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(read(model_path), options, ["CPUExecutionProvider"])
    predict = lambda rows: predict_onnx_rows(session, data, rows, card["tokenizer"])[:, 0]  # noqa: E731
    result = {
        part: family_offsets(data.latency_ms[rows], predict(rows), data.families[rows])
        for part, rows in (("new", new), ("earlier_test", earlier_test))
    }
    lines = [
        f"# Label consistency of the extension from id {args.from_id} ({args.data})",
        "",
        f"Machine: {describe_machine()}. Predictor: {args.name} {card.get('version', '?')} (trained on ids below "
        f"{trained_below}). Command: `python -m benchmarks.onnx_label_consistency --data {args.data} --from-id "
        f"{args.from_id}" + (f" --rev {args.rev}" if args.rev else "") + "`.",
        "",
        "| family | new: n | new: median label / prediction | new: MAPE | earlier test: n | earlier test: median "
        "label / prediction | earlier test: MAPE | gap (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, new_row in result["new"].items():
        old_row = result["earlier_test"].get(family, {"n": 0, "median_offset_pct": float("nan"), "mape_pct": float("nan")})
        gap = new_row["median_offset_pct"] - old_row["median_offset_pct"]
        lines.append(
            f"| {family} | {new_row['n']} | {new_row['median_offset_pct']:+.1f} % | {new_row['mape_pct']:.1f} % | "
            f"{old_row['n']} | {old_row['median_offset_pct']:+.1f} % | {old_row['mape_pct']:.1f} % | {gap:+.1f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(report)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
