"""FastAPI dependencies that hand the app-wide state (settings, predictors, cache, batchers, metrics) to the routes.

They are ``async`` because they never block: FastAPI then calls them on the event loop, not in the thread pool.
``POST /v1/predict``, the hot route, takes all of them as one ``Serving`` (one dependency to solve instead of five).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from service.batcher import Batchers
from service.cache import PredictionCache
from service.errors import ServiceError
from service.metrics import ServiceMetrics
from service.predictor import Registry
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> Registry:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise ServiceError(503, "not_ready", "predictors are not loaded yet; see GET /readyz")
    return registry


async def get_cache(request: Request) -> PredictionCache:
    return request.app.state.cache


async def get_batchers(request: Request) -> Batchers | None:
    """The dynamic batchers by predictor name; None when dynamic batching is off."""
    return getattr(request.app.state, "batchers", None)


@dataclass(frozen=True, slots=True)
class Serving:
    """The app-wide state a prediction reads, as one dependency."""

    settings: Settings
    registry: Registry
    cache: PredictionCache
    metrics: ServiceMetrics
    batchers: Batchers | None


async def get_serving(request: Request) -> Serving:
    state = request.app.state
    return Serving(state.settings, await get_registry(request), state.cache, state.metrics, await get_batchers(request))
