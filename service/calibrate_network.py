"""Few-shot calibration of a whole-network (ONNX) predictor onto a new device: measured ONNX models in, predictor out.

A CI runner or a user's CPU is rarely the device a shipped network predictor was measured on (the shipped
``cpu-ort-1t`` predictor predicts 34 % low on another Xeon). Given 10-50 ONNX models measured there
(``archcast measure``), ``fit_network_device`` predicts them with the named base network predictor, or with every
shipped one, fits ``log y = a + b log p`` (from 20 models on, if it lowers the leave-one-out error, a ridge map that
also reads the models' MACs and memory traffic: ``model.calibration.fit_network_calibration``), keeps the base whose
one-factor fit has the lowest leave-one-out error (``model.calibration.choose_network_base``: an AMD CPU follows the shipped
EPYC far more closely than the Xeon) and builds ``calibrated-<device>``: that base's graph plus its map, a network
predictor card for device ``<device>`` that ``archcast check --device`` and ``POST /v1/predict/onnx?device=`` use
like a shipped one.

The measurements are JSON lines, one ``{"onnx": <model>, "latency_ms": x}`` each (what ``archcast measure`` writes;
optional ``batch``, ``resolution``, ``sequence_length``, ``past_length``, ``environment``): ``network_measurements``
reads them for the command line (``<model>`` a file path) and for ``POST /v1/calibrate/onnx`` (``<model>`` an
uploaded file's name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from model.calibration import MIN_SAMPLES, calibrated_network_onnx, choose_network_base, network_design
from model.card import ModelCard, TargetCard
from model.errors import ArchitectureError
from model.onnx_graph import ParseOptions, parse_onnx
from service.calibrate import CALIBRATED_PRIORITY, PREFIX, CalibratedPredictor, fit_metrics
from service.errors import ServiceError
from service.network_predictor import NetworkPredictor
from service.predictor import Registry
from service.routers.predict_onnx import choose_network_predictor
from service.schemas import DEVICE_PATTERN
from service.settings import Settings

SHAPE_FIELDS = {"batch": 1, "resolution": 224, "sequence_length": 128, "past_length": 128}


@dataclass(frozen=True)
class NetworkMeasurement:
    """One measured ONNX model: its bytes, its latency on the new device, the shapes it was measured at."""

    data: bytes | Path  # the model, or its file (read one at a time: 50 models of 100 MB need not sit in memory)
    latency_ms: float
    batch: int = 1
    resolution: int = 224
    sequence_length: int = 128
    past_length: int = 128
    label: str = ""  # where it came from (file path, line), for error messages
    environment: dict[str, Any] = field(default_factory=dict)  # cpu, onnxruntime, threads as ``archcast measure`` saw them


def json_lines(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of each JSON line; blank lines and ``#`` comments skipped.

    A line that is not JSON raises ``ValueError`` naming its number."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{number}: not valid JSON ({exc.msg})") from None


def positive_latency(value: Any) -> float:
    """``value`` as a finite latency > 0 in ms; ``ValueError`` saying what is wrong otherwise."""
    try:
        latency = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"latency_ms {value!r} is not a number") from None
    if not math.isfinite(latency) or latency <= 0:
        raise ValueError(f"latency_ms must be a finite number > 0, got {value!r}")
    return latency


def network_measurements(
    text: str, locate: Callable[[str], bytes | Path], where: str
) -> list[NetworkMeasurement]:
    """The measured models of a JSON-lines text; ``locate`` turns each line's ``onnx`` value into the model.

    Every problem raises ``ValueError`` whose message starts with ``<where>:<line>:``; ``locate`` may raise
    ``ValueError`` (a model that is not there) and is told nothing else."""
    measurements = []
    try:
        for number, item in json_lines(text):
            label = f"{where}:{number}"
            if not isinstance(item, dict) or not isinstance(item.get("onnx"), str) or "latency_ms" not in item:
                raise ValueError(f"{number}: expected an object with 'onnx' (the model) and 'latency_ms'")
            shapes = {}
            for name, default in SHAPE_FIELDS.items():
                value = item.get(name, default)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"{number}: {name} must be a positive integer, got {value!r}")
                shapes[name] = value
            try:
                latency = positive_latency(item["latency_ms"])
                data = locate(item["onnx"])
            except ValueError as exc:
                raise ValueError(f"{number}: {exc}") from None
            environment = item.get("environment", {})
            measurements.append(
                NetworkMeasurement(
                    data=data,
                    latency_ms=latency,
                    label=f"{label} ({item['onnx']})",
                    environment=environment if isinstance(environment, dict) else {},
                    **shapes,
                )
            )
    except ValueError as exc:
        raise ValueError(f"{where}:{exc}") from None
    if not measurements:
        raise ValueError(f"{where}: no measurements (empty or only comments)")
    return measurements


def uploaded_measurements(text: str, models: dict[str, bytes]) -> list[NetworkMeasurement]:
    """The measurements of ``POST /v1/calibrate/onnx``: each line's ``onnx`` names an uploaded model by its file name
    (or a path ending in it, as ``archcast measure`` writes); an uploaded model no line names is refused too."""
    named: set[str] = set()

    def locate(name: str) -> bytes:
        for key in (name, name.replace("\\", "/").rsplit("/", 1)[-1]):
            if key in models:
                named.add(key)
                return models[key]
        uploaded = ", ".join(sorted(models)[:8]) + (", ..." if len(models) > 8 else "") or "none"
        raise ValueError(f"model {name!r} was not uploaded as a 'models' file (uploaded: {uploaded})")

    measurements = network_measurements(text, locate, "measurements")
    unused = sorted(set(models) - named)
    if unused:
        raise ValueError(f"uploaded model(s) {', '.join(unused[:8])} named by no measurement line")
    return measurements


def base_predictions(
    bases: Sequence[NetworkPredictor], measurements: Sequence[NetworkMeasurement], settings: Settings
) -> tuple[dict[str, np.ndarray], int]:
    """``network_design`` of every measured model under each base predictor (its ms, the model's MACs and memory
    traffic), (N, 3) per base name, and how many distinct (model, shape) pairs there are. Each model is read and
    parsed once, whatever the number of bases.

    A model that cannot be read is a 422, one over ``max_onnx_bytes`` a 413, one that does not parse a 413 / 422.
    """
    rows: dict[str, list[tuple[float, float, float]]] = {base.name: [] for base in bases}
    distinct = set()
    for number, item in enumerate(measurements):
        where = item.label or f"measurements.{number}"
        try:
            size = item.data.stat().st_size if isinstance(item.data, Path) else len(item.data)
            if size > settings.max_onnx_bytes:
                raise ServiceError(
                    413,
                    "body_too_large",
                    f"{where}: model of {size} bytes exceeds {settings.max_onnx_bytes} (ARCHCAST_MAX_ONNX_BYTES)",
                )
            data = item.data.read_bytes() if isinstance(item.data, Path) else item.data
        except OSError as exc:
            raise ServiceError(422, "invalid_measurements", f"{where}: cannot read the model: {exc.strerror or exc}") from None
        distinct.add((hashlib.sha256(data).digest(), item.batch, item.resolution, item.sequence_length, item.past_length))
        options = ParseOptions(
            batch=item.batch,
            resolution=item.resolution,
            sequence_length=item.sequence_length,
            past_length=item.past_length,
            max_nodes=settings.max_network_nodes,
        )
        try:
            graph = parse_onnx(data, options)
        except ArchitectureError as exc:
            status = 413 if exc.code == "too_large" else 422
            raise ServiceError(status, exc.code, f"{where}: {exc.message}") from None
        totals = graph.totals()
        for base in bases:
            rows[base.name].append((base.run(graph)[0], totals["macs"], totals["memory_bytes"]))
    designs = {}
    for name, values in rows.items():
        array = np.asarray(values, dtype=np.float64).reshape(-1, 3)
        designs[name] = network_design(array[:, 0], array[:, 1], array[:, 2])
    return designs, len(distinct)


def candidate_bases(registry: Registry, base_name: str | None, device: str) -> list[NetworkPredictor]:
    """The named base, or every shipped network predictor (the default first): a calibration without ``base`` maps
    from whichever of them fits the measurements best (``model.calibration.choose_network_base``). Calibrated
    predictors are not bases: their own map was fitted to a handful of models. The new device may not be named as
    a shipped predictor's device (its requests would reach two predictors)."""
    shipped = sorted(
        (p for p in registry.networks.values() if not p.card.calibration), key=lambda p: (-p.card.priority, p.name)
    )
    bases = [choose_network_predictor(registry, base_name, None)] if base_name is not None else shipped
    if not bases:
        raise ServiceError(404, "no_network_predictor", "no shipped whole-network (ONNX) predictor is loaded")
    owner = next((p.name for p in [*bases, *shipped] if p.device == device), None)
    if owner is not None:
        raise ServiceError(
            422, "invalid_measurements", f"device {device!r} is the own device of predictor {owner}; name the new device"
        )
    return bases


def fit_network_device(
    device: str,
    measurements: Sequence[NetworkMeasurement],
    registry: Registry,
    settings: Settings,
    base_name: str | None = None,
    method: str = "auto",
) -> CalibratedPredictor:
    """Predict the measured models with the base network predictor, fit the map, build ``calibrated-<device>``."""
    if not re.match(DEVICE_PATTERN, device):
        raise ServiceError(422, "invalid_device", f"device {device!r}: lower case letters, digits, '_', '.', '-' (at most 63)")
    count = len(measurements)
    if count > settings.max_calibration_samples:
        raise ServiceError(
            413,
            "batch_too_large",
            f"{count} measurements; the limit is {settings.max_calibration_samples} (ARCHCAST_MAX_CALIBRATION_SAMPLES)",
        )
    if count < MIN_SAMPLES:
        raise ServiceError(422, "invalid_measurements", f"{count} measurement(s); a calibration needs at least {MIN_SAMPLES}")
    bases = candidate_bases(registry, base_name, device)
    designs, distinct = base_predictions(bases, measurements, settings)
    if distinct < MIN_SAMPLES:
        raise ServiceError(
            422,
            "invalid_measurements",
            f"the measurements cover {distinct} distinct model(s) and shape(s); a calibration needs at least {MIN_SAMPLES}",
        )
    measured = np.array([m.latency_ms for m in measurements], dtype=np.float64)
    try:
        chosen, calibration, scores = choose_network_base(designs, measured, method)
    except ValueError as exc:
        raise ServiceError(422, "invalid_measurements", str(exc)) from None
    base = next(b for b in bases if b.name == chosen)
    if base.onnx_path is None:
        raise ServiceError(422, "invalid_base", f"network predictor {base.name!r} was not loaded from a file; name another base")
    model = calibrated_network_onnx(onnx.load(str(base.onnx_path)), calibration)
    data = model.SerializeToString()
    name = PREFIX + device
    environments = {json.dumps(m.environment, sort_keys=True, default=str) for m in measurements}
    measured_on = measurements[0].environment if len(environments) == 1 else {}  # recorded when every line agrees
    target = TargetCard(
        name=f"latency_{device}_ms",
        unit="ms",
        description=f"batch-{measurements[0].batch} latency on {device}, calibrated from {calibration.n_samples} measured "
        f"ONNX models on {base.name} {base.card.version} (device {base.device}); std = the calibration's inflated "
        "leave-one-out error and the base ensemble's spread",
        transform="log",
        mean=0.0,
        std=1.0,
        metrics=fit_metrics(calibration),
    )
    card = ModelCard(
        name=name,
        version=f"cal-{hashlib.sha256(data).hexdigest()[:12]}",
        spaces=list(base.card.spaces),
        ops=[],
        targets=[target],
        onnx_file=f"{name}.onnx",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        priority=CALIBRATED_PRIORITY,
        kind="network",
        device={**measured_on, "device": device, "calibrated_from": base.device},
        tokenizer=base.card.tokenizer,
        domain=base.card.domain,
        calibration={
            "base": base.name,
            "base_version": base.card.version,
            "device": device,
            "bases_scale_loo_rmse_log": scores,  # every base tried: its one-factor fit's leave-one-out RMSE (lowest chosen)
            **calibration.to_dict(),
        },
    )
    return CalibratedPredictor(card=card, onnx_bytes=data, calibration=calibration)
