"""``archcast calibrate``: read measured (architecture, latency) pairs and fit a predictor for a new device.

The measurement file is JSON lines, one ``{"architecture": <architecture object or NB201 arch string>, "latency_ms": x}``
per line (``#`` comments allowed), or CSV with the columns ``arch`` (NB201 arch string) and ``latency_ms``: a cell
predictor's latency heads are calibrated. A JSON-lines file of ``{"onnx": <path>, "latency_ms": x}`` lines (what
``archcast measure`` writes; optional ``batch``, ``resolution``, ``sequence_length``, ``past_length``; paths relative to the file)
calibrates a whole-network predictor instead.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archcast.rank import RankInputError


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
    from service.calibrate_network import json_lines

    try:
        yield from json_lines(path.read_text())
    except ValueError as exc:
        raise RankInputError(f"{path}:{exc}") from None


def _latency(value: Any, path: Path, number: int) -> float:
    from service.calibrate_network import positive_latency

    try:
        return positive_latency(value)
    except ValueError as exc:
        raise RankInputError(f"{path}:{number}: {exc}") from None


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


def read_network_measurements(path: Path) -> list[Any]:
    """The measured ONNX models of a JSON-lines file (``NetworkMeasurement`` each; paths relative to the file)."""
    from service.calibrate_network import network_measurements

    path = Path(path)

    def locate(name: str) -> Path:
        model = Path(name)
        return model if model.is_absolute() else path.parent / model

    try:
        return network_measurements(path.read_text(), locate, str(path))
    except ValueError as exc:
        raise RankInputError(str(exc)) from None


def calibrate_network_local(
    device: str, measurements: list[Any], base: str | None, method: str, out: Path | None
) -> tuple[dict[str, Any], Path]:
    """Fit a whole-network predictor in-process; write ``calibrated-<device>.{onnx,card.json}`` to ``out``."""
    from service.calibrate import persist
    from service.calibrate_network import fit_network_device
    from service.local import load_for_local
    from service.settings import Settings

    settings = Settings()
    calibrated = fit_network_device(device, measurements, load_for_local(settings), settings, base, method)
    directory = out or settings.calibration_dir or Path("calibrated")
    return calibrated.summary(), persist(calibrated, directory)
