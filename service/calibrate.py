"""Few-shot calibration of a new device (``POST /v1/calibrate``, ``archcast calibrate``): fit, build, register, persist.

The base predictor's latency heads (its ``ms`` targets) predict the measured architectures; ``model.calibration``
fits the map onto the new device; the result is a one-target cell predictor ``calibrated-<device>`` whose ONNX graph
is the base graph plus that map, and whose card carries the fit (base, sources, weights, leave-one-out errors).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from model.calibration import MIN_SAMPLES, Calibration, calibrated_onnx, fit_calibration
from model.card import ModelCard, TargetCard
from service.errors import ServiceError
from service.network_predictor import NetworkPredictor, check_network_contract
from service.pipeline import compute, plan_request
from service.predictor import (
    CPU,
    Predictor,
    Registry,
    _check_contract,
    _session_options,
    session_threads,
    small_batch_session,
)
from service.schemas import CalibrateRequest, PredictRequest
from service.settings import Settings

log = logging.getLogger("archcast.service")
PREFIX = "calibrated-"
CALIBRATED_PRIORITY = -100  # never the default predictor of a request that names none


@dataclass(frozen=True)
class CalibratedPredictor:
    card: ModelCard
    onnx_bytes: bytes
    calibration: Calibration

    def summary(self, top_sources: int = 10) -> dict:
        """What a caller needs to know about the fit: name, version, target, method, LOO errors, top source weights."""
        fit = self.calibration
        ranked = sorted(zip(fit.sources, fit.weights, strict=True), key=lambda sw: -abs(sw[1]))[:top_sources]
        return {
            "predictor": self.card.name,
            "version": self.card.version,
            "target": self.card.targets[0].name,
            "base": self.card.calibration["base"],
            "method": fit.method,
            "n_samples": fit.n_samples,
            "loo_mape": fit.loo_mape,
            "loo_rmse_log": fit.loo_rmse_log,
            "std_log": fit.std_log,
            "sources": dict(ranked),
            "bases_scale_loo_rmse_log": self.card.calibration.get("bases_scale_loo_rmse_log"),  # ONNX calibrations
        }


def choose_base(registry: Registry, name: str | None, settings: Settings) -> Predictor:
    """The named (or configured) base predictor; it must have latency (ms) targets and a loadable ONNX file."""
    name = name or settings.calibration_base
    base = registry.predictors.get(name)
    if base is None:
        loaded = ", ".join(sorted(registry.predictors)) or "none"
        raise ServiceError(404, "unknown_predictor", f"base predictor {name!r} is not loaded; loaded predictors: {loaded}")
    if not any(t.unit == "ms" for t in base.card.targets) or base.onnx_path is None:
        raise ServiceError(422, "invalid_base", f"predictor {name!r} has no latency (ms) targets to calibrate from")
    return base


def fit_for_device(request: CalibrateRequest, registry: Registry, settings: Settings) -> CalibratedPredictor:
    """Parse the measured architectures, predict them with the base, fit and build the calibrated predictor (CPU)."""
    count = len(request.measurements)
    if count > settings.max_calibration_samples:
        raise ServiceError(
            413,
            "batch_too_large",
            f"request has {count} measurements; the limit is {settings.max_calibration_samples} "
            "(ARCHCAST_MAX_CALIBRATION_SAMPLES)",
        )
    base = choose_base(registry, request.base, settings)
    predict_request = PredictRequest(architectures=[m.architecture for m in request.measurements], predictor=base.name)
    plan = plan_request(predict_request, registry, max_batch=count, max_nodes=settings.max_nodes, data_dir=settings.data_dir)
    distinct = len({item.key for item in plan.prepared})
    if distinct < MIN_SAMPLES:
        raise ServiceError(
            422,
            "invalid_measurements",
            f"the measurements cover {distinct} distinct architecture(s); a calibration needs at least {MIN_SAMPLES}",
        )
    rows = compute(base, [item.graph for item in plan.prepared])
    names = base.card.target_names
    matrix = np.array([[row[n] for n in names] for row in rows])
    sources = [t.name for t in base.card.targets if t.unit == "ms"]
    columns = [names.index(s) for s in sources]
    measured = np.array([m.latency_ms for m in request.measurements])
    try:
        calibration = fit_calibration(matrix, measured, columns, sources, request.method)
    except ValueError as exc:
        raise ServiceError(422, "invalid_measurements", str(exc)) from None
    return build(base, request.device, calibration)


def fit_metrics(calibration: Calibration) -> dict[str, float]:
    """The fit's figures a calibrated predictor's card carries as its target's metrics."""
    return {
        "loo_mape": round(calibration.loo_mape, 4),
        "loo_rmse_log": round(calibration.loo_rmse_log, 6),
        "std_log": round(calibration.std_log, 6),
        "n": float(calibration.n_samples),
    }


def build(base: Predictor, device: str, calibration: Calibration) -> CalibratedPredictor:
    """The calibrated predictor's card and ONNX bytes; its version is a digest of the fit (new fit, new cache keys)."""
    assert base.onnx_path is not None
    model = calibrated_onnx(onnx.load(str(base.onnx_path)), calibration)
    data = model.SerializeToString()
    digest = hashlib.sha256(data).hexdigest()[:12]
    name = PREFIX + device
    metrics = fit_metrics(calibration)
    target = TargetCard(
        name=f"latency_{device.replace('-', '_').replace('.', '_')}_ms",
        unit="ms",
        description=f"latency on {device}, calibrated from {calibration.n_samples} measurements on {base.name}",
        transform="log",
        mean=0.0,
        std=1.0,
        metrics=metrics,
    )
    card = ModelCard(
        name=name,
        version=f"cal-{digest}",
        spaces=list(base.card.spaces),
        ops=list(base.card.ops),
        targets=[target],
        onnx_file=f"{name}.onnx",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        priority=CALIBRATED_PRIORITY,
        calibration={"base": base.name, "base_version": base.card.version, "device": device, **calibration.to_dict()},
    )
    return CalibratedPredictor(card=card, onnx_bytes=data, calibration=calibration)


def register(registry: Registry, calibrated: CalibratedPredictor, settings: Settings, path: Path | None = None) -> None:
    """Load the calibrated predictor (cell or whole-network) into ``registry``, replacing an older fit of the same device."""
    name = calibrated.card.name
    held = sum(1 for n in [*registry.predictors, *registry.networks] if n.startswith(PREFIX))
    if name not in registry.predictors and name not in registry.networks and held >= settings.max_calibrated_predictors:
        raise ServiceError(
            409,
            "too_many_calibrations",
            f"this service holds {held} calibrated predictors, the limit (ARCHCAST_MAX_CALIBRATED_PREDICTORS); "
            "re-calibrate an existing device or raise the limit",
        )
    session = ort.InferenceSession(calibrated.onnx_bytes, _session_options(session_threads(settings), 3), providers=[CPU])
    if calibrated.card.kind == "network":
        check_network_contract(calibrated.card, session)
        network = NetworkPredictor(card=calibrated.card, session=session, provider=CPU, onnx_path=path)
        registry.networks = {**registry.networks, name: network}  # copy on write: readers iterate the old dict
    else:
        _check_contract(calibrated.card, session)
        small = small_batch_session(calibrated.onnx_bytes, CPU, session_threads(settings), settings.ort_small_batch)
        if small is not None:
            _check_contract(calibrated.card, small)  # also its warm-up run
        predictor = Predictor(
            card=calibrated.card, session=session, provider=CPU, onnx_path=path,
            small_session=small, small_batch=settings.ort_small_batch,
        )
        registry.predictors = {**registry.predictors, name: predictor}
    log.info("registered calibrated predictor %s %s", name, calibrated.card.version)


def persist(calibrated: CalibratedPredictor, directory: Path) -> Path:
    """Write ``<name>.onnx`` then ``<name>.card.json`` atomically (a reader never sees a card without its graph)."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = directory / calibrated.card.onnx_file
    for path, data in ((onnx_path, calibrated.onnx_bytes), (directory / f"{calibrated.card.name}.card.json", None)):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data if data is not None else (calibrated.card.to_json() + "\n").encode())
        tmp.replace(path)
    return onnx_path


def load_persisted(registry: Registry, settings: Settings, names: Sequence[str]) -> None:
    """Load calibrated predictors named in a request that another worker wrote to the calibration directory.

    One ``stat`` per named predictor; the card is read only when its file changed since this registry last read it
    (a broken card is logged once per file version, not once per request).
    """
    directory = settings.calibration_dir
    if directory is None:
        return
    for name in names:
        if not name.startswith(PREFIX) or "/" in name:
            continue
        card_path = directory / f"{name}.card.json"
        try:
            stamp = card_path.stat().st_mtime_ns
        except OSError:
            continue
        if registry.card_stamps.get(name) == stamp:
            continue  # loaded, or found broken, at this very file version
        try:
            card = ModelCard.load(card_path)
            current = registry.predictors.get(name) or registry.networks.get(name)
            if current is None or current.card.version != card.version:
                data = (directory / card.onnx_file).read_bytes()
                fields = {k: v for k, v in card.calibration.items() if k in Calibration.__dataclass_fields__}
                calibrated = CalibratedPredictor(card, data, Calibration(**fields))
                register(registry, calibrated, settings, directory / card.onnx_file)
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken file is that predictor's problem, reported as not loaded
            log.error("cannot load calibrated predictor %s from %s: %s", name, directory, exc)
        registry.card_stamps = {**registry.card_stamps, name: stamp}
