"""FastAPI dependencies that hand the app-wide state (settings, predictors, cache) to the routes."""

from __future__ import annotations

from fastapi import Request

from service.cache import PredictionCache
from service.errors import ServiceError
from service.predictor import Registry
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> Registry:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise ServiceError(503, "not_ready", "predictors are not loaded yet; see GET /readyz")
    return registry


def get_cache(request: Request) -> PredictionCache:
    return request.app.state.cache
