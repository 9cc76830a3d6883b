"""``POST /v1/calibrate``: a predictor for a new device from a handful of measured (architecture, latency) pairs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from service.calibrate import fit_for_device, persist, register
from service.deps import get_registry, get_settings
from service.predictor import Registry
from service.schemas import CalibrateRequest, CalibrateResponse, error_responses
from service.settings import Settings

router = APIRouter(prefix="/v1", tags=["calibrate"], responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503))


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
    directory = settings.calibration_dir
    path = directory / calibrated.card.onnx_file if directory is not None else None
    await run_in_threadpool(register, registry, calibrated, settings, path)
    if directory is not None:
        await run_in_threadpool(persist, calibrated, directory)
    return CalibrateResponse(**calibrated.summary(), persisted=directory is not None)
