"""NB201 official index -> arch string, from the shared benchmark table (read once, never copied)."""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from pathlib import Path

from model.parsers.nb201 import NB201_NUM_CELLS
from model.tables import nb201_arch_strings
from service.errors import ServiceError

NB201_TABLE = "nb201/accuracy.csv.gz"


def nb201_arch_string(index: int, data_dir: Path | None) -> str:
    """Arch string of an official index; 422 ``index_out_of_range`` or ``index_unavailable`` when it cannot be had."""
    if not 0 <= index < NB201_NUM_CELLS:
        raise ServiceError(422, "index_out_of_range", f"NB201 index {index} is outside 0..{NB201_NUM_CELLS - 1}")
    try:
        strings = nb201_arch_strings() if data_dir is None else _strings_from(str(Path(data_dir) / NB201_TABLE))
    except (OSError, ValueError, KeyError, IndexError, csv.Error) as exc:
        raise ServiceError(
            422,
            "index_unavailable",
            f"NB201 indices need the benchmark table, which is unavailable ({exc}); set ARCHCAST_DATA_DIR to the shared "
            "data folder or send the architecture as an arch string ('arch') instead",
        ) from None
    if index >= len(strings) or not strings[index]:
        raise ServiceError(422, "index_unavailable", f"NB201 index {index} is missing from the benchmark table; send 'arch'")
    return strings[index]


@lru_cache(maxsize=4)
def _strings_from(path: str) -> tuple[str, ...]:
    """Arch string of each index from ``<data_dir>/nb201/accuracy.csv.gz`` (columns ``index``, ``arch_str``)."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at_index, at_arch = header.index("index"), header.index("arch_str")
        pairs = [(int(row[at_index]), row[at_arch]) for row in reader]
    strings = [""] * (max(i for i, _ in pairs) + 1)
    for i, arch in pairs:
        strings[i] = arch
    return tuple(strings)
