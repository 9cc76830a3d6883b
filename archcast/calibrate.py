"""``archcast calibrate``: read measured (architecture, latency) pairs and fit a predictor for a new device.

The measurement file is JSON lines, one ``{"architecture": <architecture object or NB201 arch string>, "latency_ms": x}``
per line (``#`` comments allowed), or CSV with the columns ``arch`` (NB201 arch string) and ``latency_ms``: a cell
predictor's latency heads are calibrated. A JSON-lines file of ``{"onnx": <path>, "latency_ms": x}`` lines (what
``archcast measure`` writes; optional ``batch``, ``resolution``, ``sequence_length``; paths relative to the file)
calibrates a whole-network predictor instead.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archcast.rank import RankInputError

SHAPE_FIELDS = {"batch": 1, "resolution": 224, "sequence_length": 128}


def read_measurements(path: Path) -> tuple[list[tuple[dict[str, Any], float]], list[int]]:
    """The (architecture, latency ms) pairs of a JSON-lines or CSV file, and the line number of each."""
    path = Path(path)
    pairs: list[tuple[dict[str, Any], float]] = []
    lines: list[int] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"arch", "latency_ms"} <= set(reader.fieldnames):
                raise RankInputError(f"{path}: a CSV needs the columns 'arch' and 'latency_ms'")
            for row in reader:
                number = reader.line_num
                pairs.append(({"space": "nb201", "arch": row["arch"].strip()}, _latency(row["latency_ms"], path, number)))
                lines.append(number)
    else:
        for number, item in _json_lines(path):
            if not isinstance(item, dict) or "architecture" not in item or "latency_ms" not in item:
                raise RankInputError(f"{path}:{number}: expected an object with 'architecture' and 'latency_ms'")
            architecture = item["architecture"]
            if isinstance(architecture, str):
                architecture = {"space": "nb201", "arch": architecture}
            pairs.append((architecture, _latency(item["latency_ms"], path, number)))
            lines.append(number)
    if not pairs:
        raise RankInputError(f"{path}: no measurements (empty file or only comments)")
    return pairs, lines


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of each JSON line; blank lines and ``#`` comments skipped; bad JSON names its line."""
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise RankInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _latency(value: Any, path: Path, number: int) -> float:
    try:
        latency = float(value)
    except (TypeError, ValueError):
        raise RankInputError(f"{path}:{number}: latency_ms {value!r} is not a number") from None
    if not math.isfinite(latency) or latency <= 0:
        raise RankInputError(f"{path}:{number}: latency_ms must be a finite number > 0, got {value!r}")
    return latency


def calibrate_local(
    device: str, pairs: list[tuple[dict[str, Any], float]], base: str | None, method: str, out: Path | None
) -> tuple[dict[str, Any], Path]:
    """Fit in-process and write ``calibrated-<device>.{onnx,card.json}`` to ``out`` (default: the calibration dir)."""
    from pydantic import ValidationError

    from service.calibrate import fit_for_device, persist
    from service.errors import ServiceError
    from service.local import load_for_local
    from service.schemas import CalibrateRequest
    from service.settings import Settings
    from service.validation import describe_validation_errors

    settings = Settings()
    registry = load_for_local(settings)
    body = {
        "device": device,
        "measurements": [{"architecture": a, "latency_ms": ms} for a, ms in pairs],
        "base": base,
        "method": method,
    }
    try:
        request = CalibrateRequest.model_validate(body)
    except ValidationError as exc:
        raise ServiceError(*describe_validation_errors(list(exc.errors()), registry.spaces)) from None
    calibrated = fit_for_device(request, registry, settings)
    directory = out or settings.calibration_dir or Path("calibrated")
    onnx_path = persist(calibrated, directory)
    summary = calibrated.summary()
    return summary, onnx_path


def is_network_file(path: Path) -> bool:
    """True when the measurement file's first record names an ONNX model (``"onnx"``) rather than an architecture."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return False
    try:
        for _, item in _json_lines(path):
            return isinstance(item, dict) and "onnx" in item
    except RankInputError:
        return False
    return False


def read_network_measurements(path: Path) -> tuple[list[Any], list[int]]:
    """The measured ONNX models of a JSON-lines file (``NetworkMeasurement`` each) and the line number of each."""
    from service.calibrate_network import NetworkMeasurement

    path = Path(path)
    measurements: list[NetworkMeasurement] = []
    lines: list[int] = []
    for number, item in _json_lines(path):
        if not isinstance(item, dict) or not isinstance(item.get("onnx"), str) or "latency_ms" not in item:
            raise RankInputError(f"{path}:{number}: expected an object with 'onnx' (a file path) and 'latency_ms'")
        model = Path(item["onnx"])
        model = model if model.is_absolute() else path.parent / model
        shapes = {}
        for name, default in SHAPE_FIELDS.items():
            value = item.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RankInputError(f"{path}:{number}: {name} must be a positive integer, got {value!r}")
            shapes[name] = value
        environment = item.get("environment", {})
        measurements.append(
            NetworkMeasurement(
                data=model,
                latency_ms=_latency(item["latency_ms"], path, number),
                label=f"{path}:{number} ({item['onnx']})",
                environment=environment if isinstance(environment, dict) else {},
                **shapes,
            )
        )
        lines.append(number)
    if not measurements:
        raise RankInputError(f"{path}: no measurements (empty file or only comments)")
    return measurements, lines


def calibrate_network_local(
    device: str, measurements: list[Any], base: str | None, method: str, out: Path | None
) -> tuple[dict[str, Any], Path]:
    """Fit a whole-network predictor in-process; write ``calibrated-<device>.{onnx,card.json}`` to ``out``."""
    from service.calibrate import persist
    from service.calibrate_network import fit_network_device
    from service.errors import ServiceError
    from service.local import load_for_local
    from service.schemas import CalibrateRequest
    from service.settings import Settings

    pattern = CalibrateRequest.model_json_schema()["properties"]["device"]["pattern"]  # one rule for both calibrations
    if not re.match(pattern, device):
        raise ServiceError(422, "invalid_device", f"device {device!r}: lower case letters, digits, '_', '.', '-' (at most 63)")
    settings = Settings()
    calibrated = fit_network_device(device, measurements, load_for_local(settings), settings, base, method)
    directory = out or settings.calibration_dir or Path("calibrated")
    return calibrated.summary(), persist(calibrated, directory)
