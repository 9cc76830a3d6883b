"""One dataset made of several measured on one device: writes a ``meta.json`` that names its parts, nothing else.

    python -m training.netgen.combine --out training/datasets/cpu-ort-1t-epyc-20 \\
        --parts training/datasets/cpu-ort-1t-epyc training/datasets/cpu-ort-1t-epyc-ext6300:speed.json

Every reader of a dataset directory (``training.latency_data.load_latency_dataset``, the benchmarks, the remeasure
check) then sees the union of the parts (``training.netgen.files.latest_records``), each part's labels multiplied by
its speed file's factors where ``PART:SPEED`` names one (``training.netgen.speed``). The parts must share the device,
CPU, onnxruntime version, generator seed and measuring settings, and no id may be in two parts. A combined dataset is
read, never extended: ``training.netgen.generate`` refuses it (extend a part).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from training.netgen.files import META, latest_records

SAME = ("device", "cpu", "cpu_id", "onnxruntime", "seed", "measure")


def combine(out: Path, parts: list[tuple[Path, str | None]]) -> dict:
    metas = [json.loads((path / META).read_text()) for path, _ in parts]
    for meta in metas:  # datasets measured before the provider was recorded were measured on the CPU provider
        meta["measure"] = {"provider": "cpu", **meta.get("measure", {})}
    for (path, _), meta in zip(parts[1:], metas[1:], strict=True):
        differs = [key for key in SAME if meta.get(key) != metas[0].get(key)]
        if differs:
            raise SystemExit(f"{path} differs from {parts[0][0]} in {differs}: not one device's dataset")
    seen: set[int] = set()
    for path, _ in parts:
        ids = set(latest_records(path))
        if ids & seen:
            raise SystemExit(f"{path} repeats ids of an earlier part: {sorted(ids & seen)[:5]}")
        seen |= ids
    for path, speed in parts:
        if speed is not None and not (path / speed).exists():
            raise SystemExit(f"no speed file {path / speed} (python -m training.netgen.speed)")
    out.mkdir(parents=True, exist_ok=True)
    families = list(dict.fromkeys(f for meta in metas for f in meta.get("families", []) + [
        name for extension in meta.get("extensions", []) for name in extension["families"]]))  # fmt: skip
    meta = {
        **{key: metas[0][key] for key in (*SAME, "python", "gpu") if key in metas[0]},
        "families": families,
        "parts": [
            {"path": os.path.relpath(path.resolve(), out.resolve()), **({"speed": speed} if speed else {})}
            for path, speed in parts
        ],
    }
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def parse_part(text: str) -> tuple[Path, str | None]:
    path, _, speed = text.partition(":")
    return Path(path), speed or None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parts", nargs="+", required=True, help="dataset directories, each optionally DIR:SPEED_FILE")
    args = parser.parse_args(argv)
    meta = combine(args.out, [parse_part(p) for p in args.parts])
    print(json.dumps(meta["parts"], indent=1), f"{len(latest_records(args.out))} networks")


if __name__ == "__main__":
    main()
