"""The files of a whole-network dataset directory (torch-free, so a measuring machine needs no torch).

``meta.json`` (device, CPU, versions, settings), ``measurements.jsonl`` (one line per network) and ``graphs.jsonl.gz``
(one gzip member per chunk: id + the parsed IR). Appends are fsynced whole chunks; a line cut by a kill is skipped.
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


def latest_records(directory: Path) -> dict[int, dict[str, Any]]:
    """Each measured network's current record: its last one with a label (a network measured again appends a new one)."""
    return {int(r["id"]): r for r in read_jsonl(directory / MEASUREMENTS) if "latency_ms" in r and "error" not in r}


def read_graphs(directory: Path) -> dict[int, dict[str, Any]]:
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
