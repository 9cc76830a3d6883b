"""``archcast rank``: predict every architecture of a JSON-lines file and format the top K by one target as a table.

Each non-empty line is an architecture object as the API takes it (``{"space": "nb201", "arch": ...}``) or an NB201
arch string (bare or JSON-quoted); lines starting with ``#`` are comments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_INDEX = re.compile(r"^architectures\.(\d+)")


class RankInputError(ValueError):
    """A line of the input file that is not an architecture."""


def read_architectures(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The architectures of a JSON-lines file and the line number of each."""
    architectures: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text[0] in '{"':
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RankInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        else:
            item = text
        if isinstance(item, str):
            item = {"space": "nb201", "arch": item}
        if not isinstance(item, dict):
            raise RankInputError(f"{path}:{number}: expected an architecture object or an NB201 arch string")
        architectures.append(item)
        lines.append(number)
    if not architectures:
        raise RankInputError(f"{path}: no architectures (empty file or only comments)")
    return architectures, lines


def locate(message: str, lines: list[int]) -> str:
    """An API error message with ``architectures.<i>`` also naming the input line."""
    match = _INDEX.match(message)
    if match is None or int(match.group(1)) >= len(lines):
        return message
    return f"line {lines[int(match.group(1))]} ({match.group(0)}){message[match.end():]}"


def predict_all(
    architectures: list[dict[str, Any]], target: str, url: str | None, predictor: str | None
) -> list[dict[str, Any]]:
    """One result per architecture, through the service at ``url`` or in-process when it is None."""
    if url is not None:
        from archcast.client import Client

        with Client(url) as client:
            return client.predict(architectures, targets=[target], predictor=predictor)
    from service.local import predict_local_many

    return predict_local_many(architectures, [target], predictor)["results"]


def describe(architecture: dict[str, Any]) -> str:
    if architecture.get("space") == "nb201" and architecture.get("arch") is not None:
        return str(architecture["arch"])
    if architecture.get("space") == "nb201" and architecture.get("index") is not None:
        return f"nb201 index {architecture['index']}"
    return json.dumps(architecture, separators=(",", ":"))


def top_k(results: list[dict[str, Any]], target: str, k: int, ascending: bool) -> list[int]:
    """Indices of the best ``k`` results by ``target`` (ties keep the file order)."""
    sign = 1.0 if ascending else -1.0
    return sorted(range(len(results)), key=lambda i: sign * results[i]["predictions"][target]["value"])[:k]


def format_table(
    architectures: list[dict[str, Any]], results: list[dict[str, Any]], target: str, chosen: list[int]
) -> str:
    header = ("rank", target, "key", "architecture")
    rows = []
    for rank, i in enumerate(chosen, start=1):
        prediction = results[i]["predictions"][target]
        rows.append((str(rank), f"{prediction['value']:.2f} {prediction['unit']}", results[i]["key"], describe(architectures[i])))
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(3)]
    lines = ["  ".join([header[0].rjust(widths[0]), header[1].rjust(widths[1]), header[2].ljust(widths[2]), header[3]])]
    for row in rows:
        lines.append("  ".join([row[0].rjust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]]))
    return "\n".join(lines)
