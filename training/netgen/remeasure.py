"""Repeatability check: re-measure a random sample of already-measured networks, long after their first passes.

    python -m training.netgen.remeasure --data training/datasets/cpu-ort-1t --count 150

Appends to ``remeasure.jsonl`` (or ``--file``; resumable: ids already there are skipped) one pass per network, and
prints the median absolute % difference from the dataset value: the noise floor across time (minutes to hours
apart), where the A/B passes of the generator give it across seconds. The median signed difference shows drift (a
machine that got faster or slower since). ``--ids-below`` samples only networks with smaller ids (those of an earlier
extension of the dataset): the same seed and bound draw the same networks however far the dataset grew since.
``--part test`` samples only networks of the shipped predictor's in-domain test split (seed 0): a fresh measurement
of the networks the predictor is scored on (``benchmarks/onnx_noise_floor.py`` compares the two).

On a combined dataset (``training.netgen.combine``) the sample is drawn from the union, or with ``--per-part N`` as up
to N networks of each part, all measured in one random order (parts interleaved, so the machine's drift during the
sitting falls on each alike: what ``training.netgen.speed`` needs); each part's lines are also written to the same
file name in that part's folder, where ``training.netgen.speed`` reads them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.latency_data import in_domain_split, shipping_split
from training.netgen.export import export_spec
from training.netgen.files import META, dataset_parts, done_ids, latest_records, read_jsonl
from training.netgen.measure import device_mismatch, measure_pass

REMEASURE = "remeasure.jsonl"


PARTS = ("all", "train", "val", "test")


def split_part_ids(
    records: dict[int, dict], part: str, directory: Path | None = None, aligned_to: Path | None = None
) -> set[int]:
    """Ids of ``records`` in ``part`` of the in-domain split (seed 0) the shipped predictors are trained and scored on;
    the rows are the records in id order, as ``training.latency_data.load_latency_dataset`` reads them. With
    ``aligned_to``, the split of a predictor whose networks are placed as in that dataset's split (the dataset in
    ``directory``, read whole: ``training.latency_data.shipping_split``)."""
    if part == "all":
        return set(records)
    if aligned_to is not None:
        data, aligned = shipping_split(directory, aligned_to)
        return {int(i) for i in data.ids[getattr(aligned, part)].tolist()} & set(records)
    ids = sorted(records)
    split = in_domain_split(np.array([records[i]["family"] for i in ids]), 0)
    return {ids[row] for row in getattr(split, part).tolist()}


def remeasure(
    directory: Path,
    count: int,
    seed: int = 1,
    ids_below: int | None = None,
    file: str = REMEASURE,
    part: str = "all",
    families: list[str] | None = None,
    aligned_to: Path | None = None,
    per_part: int | None = None,
) -> dict[str, float]:
    mismatch = device_mismatch(json.loads((directory / META).read_text()))
    if mismatch:
        raise SystemExit(f"not a repeat measurement: {mismatch}")
    records = {
        i: r
        for i, r in latest_records(directory).items()
        if (ids_below is None or i < ids_below) and (families is None or r["family"] in families)
    }
    done = {int(r["id"]): r for r in read_jsonl(directory / file)}
    pool = sorted(split_part_ids(records, part, directory, aligned_to))
    parts = dataset_parts(directory)
    if per_part is None:
        sample = random.Random(seed).sample(pool, min(count, len(pool)))
    else:
        rng, sample = random.Random(seed), []
        for path, _ in parts:
            own = sorted(set(pool) & done_ids(path))
            sample += rng.sample(own, min(per_part, len(own)))
        rng.shuffle(sample)
    with (directory / file).open("a") as handle:
        for i in tqdm([i for i in sample if i not in done], desc="remeasure", unit="net"):
            record = records[i]
            result = measure_pass(export_spec(record["family"], record["spec"]))
            line = {"id": i, "min_ms": result.min_ms, "median_ms": result.median_ms, "runs": result.runs, "t": time.time()}
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            done[i] = line
    if len(parts) > 1:
        write_part_lines(directory, file, parts)
    signed = [100 * (done[i]["min_ms"] - records[i]["latency_ms"]) / records[i]["latency_ms"] for i in done if i in records]
    diffs = np.abs(signed)
    hours = [(done[i]["t"] - records[i]["a"]["t"]) / 3600 for i in done if i in records and "a" in records[i]]
    return {
        "n": float(len(diffs)),
        "median_abs_pct": float(np.median(diffs)) if len(diffs) else float("nan"),
        "p90_abs_pct": float(np.percentile(diffs, 90)) if len(diffs) else float("nan"),
        "median_signed_pct": float(np.median(signed)) if signed else float("nan"),
        "median_hours_apart": float(np.median(hours)) if hours else float("nan"),
    }


def write_part_lines(directory: Path, file: str, parts: list[tuple[Path, str | None]]) -> None:
    """Each part's lines of a combined dataset's ``file``, written (whole, replacing) to ``file`` in that part."""
    lines = list(read_jsonl(directory / file))
    for path, _ in parts:
        own = done_ids(path)
        mine = [json.dumps(line) for line in lines if int(line["id"]) in own]
        (path / file).write_text("".join(f"{line}\n" for line in mine))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1, help="draws the sample")
    parser.add_argument("--ids-below", type=int, default=None, help="sample only networks with smaller ids")
    parser.add_argument("--file", default=REMEASURE, help="results file inside the dataset directory")
    parser.add_argument("--part", choices=PARTS, default="all", help="sample only this part of the in-domain split")
    parser.add_argument("--families", nargs="+", default=None, help="sample only networks of these families")
    parser.add_argument(
        "--aligned-to", type=Path, default=None, help="--part of the split placed as in this dataset's (an aligned predictor's)"
    )
    parser.add_argument(
        "--per-part", type=int, default=None, metavar="N", help="on a combined dataset: N networks of each part (not --count)"
    )
    args = parser.parse_args(argv)
    drift = remeasure(
        args.data, args.count, args.seed, args.ids_below, args.file, args.part, args.families, args.aligned_to, args.per_part
    )
    print(json.dumps(drift, indent=1))


if __name__ == "__main__":
    main()
