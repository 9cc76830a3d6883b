"""Reading the shared benchmark tables (never copied into the project) from a configurable data directory.

The directory is ``ARCHCAST_DATA_DIR`` when set, else ``../shared/data`` relative to the project root.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("ARCHCAST_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def table_path(relative: str) -> Path:
    path = data_dir() / relative
    if not path.exists():
        raise FileNotFoundError(f"benchmark table {path} not found; set ARCHCAST_DATA_DIR to the shared data folder")
    return path


def read_csv_table(relative: str) -> dict[str, list[str]]:
    """A gzipped CSV as columns of strings."""
    with gzip.open(table_path(relative), "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def file_checksum(relative: str) -> str:
    return hashlib.sha256(table_path(relative).read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def nb201_arch_strings() -> tuple[str, ...]:
    """NB201 arch string of each official index 0..15624, from the accuracy table."""
    columns = read_csv_table("nb201/accuracy.csv.gz")
    indices = np.asarray(columns["index"], dtype=np.int64)
    strings = np.empty(len(indices), dtype=object)
    strings[indices] = columns["arch_str"]
    return tuple(strings.tolist())
