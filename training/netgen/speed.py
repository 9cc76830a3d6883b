"""The machine's speed while a dataset was labelled, against another dataset's labels, measured afterwards.

    python -m training.netgen.speed --data training/datasets/cpu-ort-1t-epyc-ext6300 \\
        --samples remeasure_2026-12-04_test_interleaved.jsonl \\
        --reference training/datasets/cpu-ort-1t-epyc --reference-samples remeasure_2026-12-04_test_interleaved.jsonl

A shared host runs the same network at a speed that moves by several % over hours. Two datasets labelled on
different days (or one labelled while the machine slowed) then disagree by that much on equal networks, and a model
trained on both learns the difference as a property of the families each holds. Re-measuring a random sample of both
in one sitting (``training.netgen.remeasure``) tells how fast each was labelled: for a sampled network of ``--data``,
``log(now / label)`` minus the median of the same over the reference's sample is how much faster (> 0) or slower (< 0)
the machine was when that label was taken than when the reference's were. Its median within each of ``--bins`` equal
stretches of the labelling run (by the middle time of a network's two passes) is the run's speed at that moment.
Measure both samples interleaved, in one random order (``remeasure`` on a combined dataset of both, then the lines
split by part): the machine's speed moves within minutes, and a reference measured only before and after the other
sample pinned it 2-4 % off (``training/datasets/cpu-ort-1t-epyc-20/README.md``).

Writes ``speed.json`` into ``--data``: per bin its time range, the sample count and ``factor`` = exp(median), the
multiplier that brings a label of that moment to the reference's speed (``training.netgen.files.speed_corrected``
applies it where a combined dataset names the file), plus the reference sample's own spread (its median drift
against its labels at the start and the end of the sitting, which bounds how steady the sitting itself was).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.netgen.files import latest_records, read_jsonl

SPEED = "speed.json"


def log_ratios(directory: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``log(remeasured / label)`` of every line of ``files`` (remeasure outputs in ``directory``) and the middle time
    of each network's labelling passes."""
    records = latest_records(directory)
    lines = [line for name in files for line in read_jsonl(directory / name) if int(line["id"]) in records]
    if not lines:
        raise SystemExit(f"no re-measured networks of {directory} in {files}")
    ratio = np.array([np.log(line["min_ms"] / records[int(line["id"])]["latency_ms"]) for line in lines])
    labelled = np.array([(records[int(line["id"])]["a"]["t"] + records[int(line["id"])]["b"]["t"]) / 2 for line in lines])
    return ratio, labelled


def fit_speed(directory: Path, samples: list[str], reference: Path, reference_samples: list[str], bins: int) -> dict:
    reference_ratio = [log_ratios(reference, [name])[0] for name in reference_samples]
    offset = float(np.median(np.concatenate(reference_ratio)))
    ratio, labelled = log_ratios(directory, samples)
    relative = ratio - offset
    times = [(r["a"]["t"] + r["b"]["t"]) / 2 for r in latest_records(directory).values()]
    edges = np.linspace(min(times), max(times), bins + 1)
    where = np.clip(np.searchsorted(edges, labelled, side="right") - 1, 0, bins - 1)
    out = []
    for k in range(bins):
        inside = relative[where == k]
        if not len(inside):
            raise SystemExit(f"bin {k} of {bins} holds no re-measured network: sample more or use fewer bins")
        out.append({"from_t": float(edges[k]), "to_t": float(edges[k + 1]), "n": int(len(inside)),
                    "median_pct": float(100 * np.median(inside)), "factor": float(np.exp(np.median(inside)))})  # fmt: skip
    return {
        "reference": str(reference),
        "samples": samples,
        "reference_samples": reference_samples,
        "reference_median_drift_pct": [float(100 * np.median(r)) for r in reference_ratio],
        "sampled_networks": int(len(relative)),
        "median_pct": float(100 * np.median(relative)),
        "bins": out,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the dataset whose labelling speed is measured")
    parser.add_argument("--samples", nargs="+", required=True, help="remeasure files in --data")
    parser.add_argument("--reference", type=Path, required=True, help="the dataset whose speed the labels are brought to")
    parser.add_argument("--reference-samples", nargs="+", required=True, help="remeasure files in --reference, same sitting")
    parser.add_argument("--bins", type=int, default=4, help="equal stretches of --data's labelling run")
    args = parser.parse_args(argv)
    speed = fit_speed(args.data, args.samples, args.reference, args.reference_samples, args.bins)
    (args.data / SPEED).write_text(json.dumps(speed, indent=1) + "\n")
    print(json.dumps({k: v for k, v in speed.items() if k != "bins"}, indent=1))
    for b in speed["bins"]:
        print(f"{(b['from_t'] - speed['bins'][0]['from_t']) / 60:6.1f} min  n={b['n']:3d}  {b['median_pct']:+.1f} %")


if __name__ == "__main__":
    main()
