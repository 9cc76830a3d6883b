"""``GET /healthz`` (liveness, always 200) and ``GET /readyz`` (200 once predictors are loaded, else 503)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        return JSONResponse({"ready": False, "provider": None, "predictors": [], "errors": ["predictors not loaded yet"]}, 503)
    names = sorted([*registry.predictors, *registry.networks])
    body = {"ready": registry.ready, "provider": registry.provider, "predictors": names}
    if registry.errors:
        body["errors"] = registry.errors
    elif not registry.predictors and not registry.networks:
        body["errors"] = ["no predictor cards found"]
    return JSONResponse(body, status_code=200 if registry.ready else 503)
