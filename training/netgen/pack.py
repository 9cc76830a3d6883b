"""Measure a dataset's networks on another machine that has no torch: a pack of weight-free ONNX files.

    # here (torch): the first COUNT networks of a dataset, float initializers stripped (integer constants kept)
    python -m training.netgen.pack export --data training/datasets/cpu-ort-1t-epyc --count 980 --out pack.tar.xz
    # there (numpy + onnx + onnxruntime only): random float weights restored, each chunk measured in two passes in
    # two shuffled orders like the generator does; resumable (ids already in DIR are skipped); --budget-s stops
    # before a chunk that would not finish in time
    python -m training.netgen.pack measure --pack pack.tar.xz --out DIR --device cuda-ort-h200 --provider cuda
    # here: a dataset directory of the measured networks, with their graphs copied from the source dataset
    python -m training.netgen.pack assemble --measured DIR --source training/datasets/cpu-ort-1t-epyc \\
        --out training/datasets/cuda-ort-h200

Latency does not depend on the weight values (float32, no sparsity paths), so random weights measure the same
network. The graphs are those of the source dataset: same specs, same exporter, same parse.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from training.netgen.files import GRAPHS, MEASUREMENTS, META, append_lines, done_ids, read_graphs, read_jsonl
from training.netgen.measure import MeasureSettings, environment, measure_chunk

INDEX = "index.json"
FLOAT_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}


def strip_weights(data: bytes) -> bytes:
    """The model with every float initializer's values removed (dims and type kept); integer tensors stay whole."""
    model = onnx.load_from_string(data)
    for tensor in model.graph.initializer:
        if tensor.data_type in FLOAT_TYPES:
            for name in ("raw_data", "float_data", "double_data", "int32_data"):
                tensor.ClearField(name)
    return model.SerializeToString()


def restore_weights(data: bytes, seed: int = 0) -> bytes:
    """Fill every float initializer that has no values with small random ones of its dims."""
    model = onnx.load_from_string(data)
    rng = np.random.default_rng(seed)
    for index, tensor in enumerate(model.graph.initializer):
        count = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
        empty = not (tensor.raw_data or tensor.float_data or tensor.double_data or tensor.int32_data)
        if tensor.data_type in FLOAT_TYPES and empty and count:
            values = (0.05 * rng.standard_normal(count)).astype(FLOAT_TYPES[tensor.data_type]).reshape(tuple(tensor.dims))
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(values, tensor.name))
    return model.SerializeToString()


def export_pack(source: Path, count: int, out: Path) -> int:
    """Write the first ``count`` measured networks of ``source`` (by id) as weight-free ONNX files into one tar.xz."""
    from tqdm import tqdm

    from training.netgen.export import export_spec  # torch: only the exporting side needs it

    records = sorted((r for r in read_jsonl(source / MEASUREMENTS) if "latency_ms" in r), key=lambda r: int(r["id"]))
    chosen = records[:count]
    index = {"source": str(source), "source_meta": json.loads((source / META).read_text()), "networks": []}
    with tarfile.open(out, "w:xz") as tar:
        for record in tqdm(chosen, desc="export", unit="net"):
            light = strip_weights(export_spec(record["family"], record["spec"]))
            info = tarfile.TarInfo(f"{int(record['id'])}.onnx")
            info.size = len(light)
            tar.addfile(info, io.BytesIO(light))
            keep = ("id", "family", "spec", "onnx_bytes", "totals")
            index["networks"].append({k: record[k] for k in keep if k in record})
        payload = json.dumps(index).encode()
        info = tarfile.TarInfo(INDEX)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return len(chosen)


def measure_pack(
    pack: Path, out: Path, device: str, settings: MeasureSettings, chunk: int = 40, budget_s: float | None = None
) -> int:
    """Measure the pack's networks into ``out`` (measurements.jsonl + meta.json); returns how many are now measured."""
    from tqdm import tqdm

    started = time.perf_counter()
    with tarfile.open(pack, "r:xz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files.pop(INDEX))
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "seed": index["source_meta"].get("seed"),
        "families": index["source_meta"].get("families"),
        "measure": settings.to_dict(),
        **environment(settings.provider),
        "device": device,
        "source": index["source"],
    }
    if "extensions" in index["source_meta"]:  # which families later ids belong to
        meta["extensions"] = index["source_meta"]["extensions"]
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    done = done_ids(out)
    todo = [n for n in index["networks"] if int(n["id"]) not in done]
    rng = random.Random(f"order:{len(done)}")
    bar = tqdm(total=len(index["networks"]), initial=len(done), desc=f"measure on {device}", unit="net")
    chunk_seconds: list[float] = []
    for start in range(0, len(todo), chunk):
        if budget_s is not None and chunk_seconds and time.perf_counter() - started + max(chunk_seconds) > budget_s:
            print(f"stopping: the next chunk would not finish inside the {budget_s:.0f} s budget")
            break
        t0 = time.perf_counter()
        networks = todo[start : start + chunk]
        models = {int(n["id"]): restore_weights(files[f"{int(n['id'])}.onnx"], seed=int(n["id"])) for n in networks}
        results = measure_chunk(models, settings, rng)
        lines = []
        for n in networks:
            record: dict[str, Any] = {**n, **results[int(n["id"])]}
            lines.append(json.dumps(record, separators=(",", ":")))
        append_lines(out / MEASUREMENTS, lines)
        bar.update(len(networks))
        chunk_seconds.append(time.perf_counter() - t0)
    bar.close()
    return len(done_ids(out))


def assemble(measured: Path, source: Path, out: Path) -> int:
    """A dataset directory: ``measured``'s meta and measurements plus the source dataset's graphs of those ids."""
    records = [r for r in read_jsonl(measured / MEASUREMENTS)]
    graphs = read_graphs(source)
    missing = [int(r["id"]) for r in records if int(r["id"]) not in graphs]
    if missing:
        raise SystemExit(f"{source} has no graph for ids {missing[:10]}")
    out.mkdir(parents=True, exist_ok=True)
    (out / META).write_text((measured / META).read_text())
    (out / MEASUREMENTS).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    lines = [json.dumps({"id": int(r["id"]), "graph": graphs[int(r["id"])]}, separators=(",", ":")) for r in records]
    (out / GRAPHS).unlink(missing_ok=True)
    append_lines(out / GRAPHS, lines, compress=True)
    with gzip.open(out / GRAPHS, "rt") as handle:  # read back: the file is whole
        assert sum(1 for _ in handle) == len(records)
    return len(records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="weight-free ONNX files of a dataset's first networks (needs torch)")
    export.add_argument("--data", type=Path, required=True)
    export.add_argument("--count", type=int, required=True)
    export.add_argument("--out", type=Path, required=True)
    measure = commands.add_parser("measure", help="measure a pack here (numpy + onnx + onnxruntime only)")
    measure.add_argument("--pack", type=Path, required=True)
    measure.add_argument("--out", type=Path, required=True)
    measure.add_argument("--device", required=True, help="device name recorded in meta.json, e.g. cuda-ort-h200")
    measure.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    measure.add_argument("--threads", type=int, default=1)
    measure.add_argument("--min-time-s", type=float, default=0.3)
    measure.add_argument("--chunk", type=int, default=40)
    measure.add_argument("--budget-s", type=float, default=None)
    build = commands.add_parser("assemble", help="a dataset directory from measurements + the source's graphs")
    build.add_argument("--measured", type=Path, required=True)
    build.add_argument("--source", type=Path, required=True)
    build.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "export":
        print(f"{export_pack(args.data, args.count, args.out)} networks -> {args.out}")
    elif args.command == "measure":
        settings = MeasureSettings(threads=args.threads, min_time_s=args.min_time_s, provider=args.provider)
        print(f"{measure_pack(args.pack, args.out, args.device, settings, args.chunk, args.budget_s)} networks measured")
    else:
        print(f"{assemble(args.measured, args.source, args.out)} networks -> {args.out}")


if __name__ == "__main__":
    main()
