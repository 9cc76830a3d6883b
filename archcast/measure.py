"""``archcast measure``: the latency of ONNX models on this machine, measured the way ArchCast's training labels were.

Same protocol as the dataset generator (``training.netgen.measure``, numpy + onnxruntime, no torch): a fresh
session per pass, 1 intra-op thread by default, warm-up runs, the minimum of timed runs; two passes over all models
in two shuffled orders; the label is the mean of the passes' minima, and the passes' spread is reported as the noise.
Models are measured in chunks and each finished chunk is appended to the output file at once, so a killed run resumes
where it stopped (models already in the file are skipped). The output is what ``archcast calibrate`` reads.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from model.onnx_graph import ParseOptions, parse_onnx
from training.netgen.measure import INTEGER_INPUTS, MeasureSettings, cpu_model, cpu_signature, make_session, measure_pass

CHUNK = 8  # models per chunk: both passes of a chunk finish before it is written


def measurement_feed(data: bytes, options: ParseOptions, threads: int) -> dict[str, np.ndarray]:
    """Inputs for every model input at the shapes ArchCast's parser resolves (symbolic dimensions from ``options``)."""
    shapes = parse_onnx(data, options).input_shapes
    session = make_session(data, threads)
    rng = np.random.default_rng(0)
    feed = {}
    for value in session.get_inputs():
        shape = shapes.get(value.name) or [d if isinstance(d, int) and d > 0 else 1 for d in value.shape]
        if value.type in INTEGER_INPUTS:  # token ids: id 0 is valid for every embedding table
            feed[value.name] = np.zeros(shape, INTEGER_INPUTS[value.type])
        else:
            feed[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


def environment(threads: int) -> dict[str, Any]:
    return {"cpu": cpu_model(), "cpu_id": cpu_signature(), "onnxruntime": ort.__version__, "threads": threads}


def _key(path: str, options: ParseOptions) -> tuple[str, int, int, int, int]:
    return path, options.batch, options.resolution, options.sequence_length, options.past_length


def _done(out: Path) -> set[tuple[str, int, int, int, int]]:
    if not out.exists():
        return set()
    keys = set()
    for line in out.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            item = json.loads(line)
            past = item.get("past_length", ParseOptions.past_length)  # files written before the field: the default
            keys.add((item["onnx"], item["batch"], item["resolution"], item["sequence_length"], past))
    return keys


def _relative(model: Path, out: Path) -> str:
    """The model's path as the measurements file records it: relative to the file's folder when it lies below it."""
    model, base = model.resolve(), out.resolve().parent
    return str(model.relative_to(base)) if model.is_relative_to(base) else str(model)


def measure_models(
    models: Sequence[Path],
    out: Path,
    options: ParseOptions,
    settings: MeasureSettings,
    passes: int = 2,
    seed: int = 0,
    log: Any = sys.stderr,
) -> list[dict[str, Any]]:
    """Measure every model not yet in ``out`` and append one JSON line per model; returns the new records."""
    done = _done(out)
    todo = [m for m in models if _key(_relative(m, out), options) not in done]
    if len(todo) < len(models):
        print(f"{len(models) - len(todo)} model(s) already in {out}: skipped", file=log)
    env = environment(settings.threads)
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        loaded = {m: m.read_bytes() for m in chunk}
        feeds = {m: measurement_feed(data, options, settings.threads) for m, data in loaded.items()}
        minima: dict[Path, list[float]] = {m: [] for m in chunk}
        for _ in range(passes):
            order = list(chunk)
            rng.shuffle(order)
            for m in order:
                minima[m].append(measure_pass(loaded[m], settings, feeds[m]).min_ms)
        with out.open("a") as handle:
            for m in chunk:
                label = statistics.fmean(minima[m])
                spread = 100.0 * (max(minima[m]) - min(minima[m])) / label
                record = {
                    "onnx": _relative(m, out),
                    "latency_ms": label,
                    "passes_min_ms": minima[m],
                    "spread_pct": spread,
                    "batch": options.batch,
                    "resolution": options.resolution,
                    "sequence_length": options.sequence_length,
                    "past_length": options.past_length,
                    "environment": env,
                }
                handle.write(json.dumps(record) + "\n")
                records.append(record)
        finished = start + len(chunk)
        elapsed = time.perf_counter() - started
        eta = elapsed / finished * (len(todo) - finished)
        print(f"measured {finished}/{len(todo)} models ({elapsed:.0f} s, about {eta:.0f} s left)", file=log)
    return records
