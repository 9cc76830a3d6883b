"""``POST /v1/calibrate`` (cells) and ``POST /v1/calibrate/onnx`` (whole networks): a predictor for a new device from a
handful of measured (architecture, latency) pairs."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from service.calibrate import CalibratedPredictor, fit_for_device, persist, register
from service.calibrate_network import fit_network_device, uploaded_measurements
from service.deps import get_registry, get_settings
from service.errors import ServiceError
from service.predictor import Registry
from service.routers.predict_onnx import read_form
from service.schemas import (
    CALIBRATION_METHODS,
    DEVICE_PATTERN,
    CalibrateRequest,
    CalibrateResponse,
    error_responses,
)
from service.settings import Settings

ONNX_CALIBRATE_PATH = "/v1/calibrate/onnx"
router = APIRouter(prefix="/v1", tags=["calibrate"], responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503))


async def _serve(calibrated: CalibratedPredictor, registry: Registry, settings: Settings) -> CalibrateResponse:
    """Load the calibrated predictor here and, with ``ARCHCAST_CALIBRATION_DIR`` set, write it there for every worker."""
    directory = settings.calibration_dir
    path = directory / calibrated.card.onnx_file if directory is not None else None
    await run_in_threadpool(register, registry, calibrated, settings, path)
    if directory is not None:
        await run_in_threadpool(persist, calibrated, directory)
    return CalibrateResponse(**calibrated.summary(), persisted=directory is not None)


@router.post("/calibrate", response_model=CalibrateResponse)
async def calibrate_route(
    body: CalibrateRequest,
    registry: Annotated[Registry, Depends(get_registry)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> CalibrateResponse:
    """Fit ``calibrated-<device>`` on the base predictor's latency heads and load it; predict with it by name.

    With ``ARCHCAST_CALIBRATION_DIR`` set it is also written there, so every worker (and a restart) serves it.
    """
    calibrated = await run_in_threadpool(fit_for_device, body, registry, settings)
    return await _serve(calibrated, registry, settings)


def _text_field(form: FormData, name: str, required: bool = False) -> str | None:
    value = form.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ServiceError(422, "invalid_form", f"form field {name!r} is {'missing' if value is None else 'a file'}; send text")
    return value


async def _measurements_text(form: FormData) -> str:
    value = form.get("measurements")
    if value is None:
        raise ServiceError(422, "invalid_form", "form field 'measurements' (JSON lines, as `archcast measure` writes) is missing")
    raw = await value.read() if isinstance(value, UploadFile) else value
    try:
        return raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ServiceError(422, "invalid_measurements", "measurements are not UTF-8 text (JSON lines)") from None


async def _uploaded_models(form: FormData) -> dict[str, bytes]:
    models: dict[str, bytes] = {}
    for upload in form.getlist("models"):
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ServiceError(422, "invalid_form", "each 'models' part must be a file with a file name (curl -F models=@a.onnx)")
        if upload.filename in models:
            raise ServiceError(422, "invalid_form", f"two uploaded models are named {upload.filename!r}; rename one")
        models[upload.filename] = await upload.read()
    if not models:
        raise ServiceError(422, "invalid_form", "no ONNX models uploaded: send each measured model as a 'models' file")
    return models


@router.post(
    "/calibrate/onnx",
    response_model=CalibrateResponse,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["device", "measurements", "models"],
                        "properties": {
                            "device": {"type": "string", "pattern": DEVICE_PATTERN},
                            "measurements": {
                                "type": "string",
                                "description": 'JSON lines {"onnx": <uploaded file name>, "latency_ms": x, "batch", '
                                '"resolution", "sequence_length", "past_length"} as `archcast measure` writes them',
                            },
                            "models": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "base": {
                                "type": "string",
                                "description": "network predictor to calibrate; omitted: the shipped one whose "
                                "one-factor fit has the lowest leave-one-out error",
                            },
                            "method": {"type": "string", "enum": list(CALIBRATION_METHODS)},
                        },
                    }
                }
            },
            "required": True,
        }
    },
)
async def calibrate_onnx_route(
    request: Request,
    registry: Annotated[Registry, Depends(get_registry)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> CalibrateResponse:
    """Fit ``calibrated-<device>``, a whole-network predictor, from measured ONNX models uploaded in one multipart form.

    Predict with it by ``POST /v1/predict/onnx?device=<device>``. The models are parsed in memory (never written
    to disk); the body is bounded by ``ARCHCAST_MAX_CALIBRATION_UPLOAD_BYTES``, each model by
    ``ARCHCAST_MAX_ONNX_BYTES``, their number by ``ARCHCAST_MAX_CALIBRATION_SAMPLES``.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ServiceError(
            415,
            "unsupported_media_type",
            "send multipart/form-data: fields 'device' and 'measurements' and one 'models' file per measured model",
        )
    form = await read_form(request, max_files=settings.max_calibration_samples + 1, max_fields=8)
    device = _text_field(form, "device", required=True) or ""
    method = _text_field(form, "method") or "auto"
    if method not in CALIBRATION_METHODS:
        raise ServiceError(422, "invalid_form", f"method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    base = _text_field(form, "base")
    text = await _measurements_text(form)
    models = await _uploaded_models(form)
    try:
        measurements = uploaded_measurements(text, models)
    except ValueError as exc:
        raise ServiceError(422, "invalid_measurements", str(exc)) from None
    bound = settings.parse_timeout_seconds * len(measurements)
    try:
        calibrated = await asyncio.wait_for(
            run_in_threadpool(fit_network_device, device, measurements, registry, settings, base, method), bound
        )
    except TimeoutError:
        raise ServiceError(
            422, "parse_timeout", f"parsing the models took longer than {bound:.0f} s (ARCHCAST_PARSE_TIMEOUT_SECONDS per model)"
        ) from None
    return await _serve(calibrated, registry, settings)
