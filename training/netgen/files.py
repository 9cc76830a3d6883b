"""The files of a whole-network dataset directory (torch-free, so a measuring machine needs no torch).

``meta.json`` (device, CPU, versions, settings), ``measurements.jsonl`` (one line per network) and ``graphs.jsonl.gz``
(one gzip member per chunk: id + the parsed IR). Appends are fsynced whole chunks; a line cut by a kill is skipped.

A combined dataset (``training.netgen.combine``) holds only a ``meta.json`` whose ``parts`` name other dataset
directories of the same device; ``latest_records`` and ``read_graphs`` read it as the union of its parts. A part may
name a speed file (``training.netgen.speed``: the measured speed of the machine while that part was labelled, against
the first part's labels); its labels are then multiplied by the factor of their moment, and each such record keeps its
measured value as ``measured_latency_ms`` and the factor as ``speed_factor``.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MEASUREMENTS = "measurements.jsonl"
GRAPHS = "graphs.jsonl.gz"
META = "meta.json"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open() as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill mid-write; its chunk is redone


def done_ids(directory: Path) -> set[int]:
    return {int(record["id"]) for record in read_jsonl(directory / MEASUREMENTS)}


def dataset_parts(directory: Path) -> list[tuple[Path, str | None]]:
    """The measured directories behind ``directory`` with each one's speed file name: itself (no speed file), or the
    ``parts`` its ``meta.json`` names (paths relative to it)."""
    meta = directory / META
    parts = json.loads(meta.read_text()).get("parts") if meta.exists() else None
    if not parts:
        return [(directory, None)]
    return [((directory / part["path"]).resolve(), part.get("speed")) for part in parts]


def speed_factor(record: dict[str, Any], bins: list[dict[str, float]]) -> float:
    """The factor that brings ``record``'s label to the reference speed: that of the time bin holding the middle of its
    two passes (the nearest bin when outside them)."""
    t = (record["a"]["t"] + record["b"]["t"]) / 2
    nearest = min(bins, key=lambda b: 0.0 if b["from_t"] <= t <= b["to_t"] else min(abs(t - b["from_t"]), abs(t - b["to_t"])))
    return float(nearest["factor"])


def speed_corrected(record: dict[str, Any], bins: list[dict[str, float]]) -> dict[str, Any]:
    factor = speed_factor(record, bins)
    passes = {k: {**record[k], "min_ms": record[k]["min_ms"] * factor, "median_ms": record[k]["median_ms"] * factor}
              for k in ("a", "b")}  # fmt: skip
    corrected = {"latency_ms": record["latency_ms"] * factor, "measured_latency_ms": record["latency_ms"], "speed_factor": factor}
    return {**record, **passes, **corrected}


def latest_records(directory: Path) -> dict[int, dict[str, Any]]:
    """Each measured network's current record: its last one with a label (a network measured again appends a new one).
    A combined dataset gives the union of its parts, speed-corrected where a part names a speed file; two parts
    holding the same id is an error."""
    records: dict[int, dict[str, Any]] = {}
    for part, speed in dataset_parts(directory):
        own = {int(r["id"]): r for r in read_jsonl(part / MEASUREMENTS) if "latency_ms" in r and "error" not in r}
        if speed is not None:
            bins = json.loads((part / speed).read_text())["bins"]
            own = {i: speed_corrected(r, bins) for i, r in own.items()}
        if records.keys() & own.keys():
            raise ValueError(f"{part} repeats ids of an earlier part of {directory}: {sorted(records.keys() & own.keys())[:5]}")
        records.update(own)
    return records


def read_graphs(directory: Path) -> dict[int, dict[str, Any]]:
    """Each network's parsed IR by id (the union of a combined dataset's parts)."""
    graphs: dict[int, dict[str, Any]] = {}
    for part, _ in dataset_parts(directory):
        graphs.update(read_part_graphs(part))
    return graphs


def read_part_graphs(directory: Path) -> dict[int, dict[str, Any]]:
    graphs: dict[int, dict[str, Any]] = {}
    path = directory / GRAPHS
    if not path.exists():
        return graphs
    try:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                record = json.loads(line)
                graphs[int(record["id"])] = record["graph"]
    except (EOFError, OSError, json.JSONDecodeError):
        pass  # a truncated last member (killed mid-write): its chunk has no measurements and is redone
    return graphs


def append_lines(path: Path, lines: list[str], compress: bool = False) -> None:
    payload = "".join(line + "\n" for line in lines).encode()
    if not compress and path.exists() and path.stat().st_size:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                payload = b"\n" + payload  # end a line cut by a kill, so it stays one bad line
    with path.open("ab") as handle:
        handle.write(gzip.compress(payload) if compress else payload)
        handle.flush()
        os.fsync(handle.fileno())
