"""The FastAPI application factory: routers, start-up loading of predictors and cache, metrics, and 4xx JSON error bodies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model import nb201_canonical
from model.errors import ArchitectureError
from service.access import ApiKeyAuth, RequestContext
from service.batcher import Batchers
from service.cache import cache_from_settings
from service.errors import ServiceError, error_body
from service.gc_tuning import serving_gc
from service.http_metrics import HTTPMetrics
from service.metrics import ServiceMetrics
from service.middleware import BodySizeLimit
from service.predictor import Registry, load_service_registry
from service.routers import calibrate, health, predict, predict_onnx, predictors
from service.routers import metrics as metrics_router
from service.routers.calibrate import ONNX_CALIBRATE_PATH
from service.routers.predict_onnx import ONNX_PATH
from service.settings import Settings
from service.validation import describe_validation_errors

log = logging.getLogger("archcast.service")
_HTTP_CODES = {
    400: "malformed_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve app; predictors are loaded once when its lifespan starts."""
    settings = settings or Settings()
    logging.getLogger("archcast").setLevel(settings.log_level.upper())

    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = load_service_registry(settings)
        if any("nb201" in p.card.spaces for p in registry.predictors.values()):
            nb201_canonical.preload()
        if settings.strict_startup:
            refuse_incomplete(registry, settings)
        metrics.set_models(
            (p.card.name, p.card.version, p.provider) for p in [*registry.predictors.values(), *registry.networks.values()]
        )
        app.state.cache = cache_from_settings(settings, on_error=metrics.cache_errors.inc)
        if settings.redis_url is not None:
            ttl = f"{settings.redis_ttl_seconds} s" if settings.redis_ttl_seconds else "none"
            log.info(
                "caching predictions in Redis (timeout %s s, expiry %s; %d entries kept in this worker in front of it)",
                settings.redis_timeout_seconds,
                ttl,
                settings.redis_near_cache_size,
            )
        if settings.dynamic_batching:
            app.state.batchers = Batchers.start(
                registry.predictors.values(),
                wait_ms=settings.batch_wait_ms,
                max_batch=settings.batch_max,
                queue_max=settings.batch_queue_max,
                metrics=metrics,
            )
        app.state.registry = registry
        try:
            with serving_gc(settings.gc_tuning):
                yield
        finally:
            app.state.registry = None
            if app.state.batchers is not None:
                await app.state.batchers.stop()
            app.state.batchers = None
            await app.state.cache.aclose()

    app = FastAPI(
        title="ArchCast",
        summary="Accuracy and latency of neural architectures, predicted from the architecture alone.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.cache = None  # made when the lifespan starts, inside the event loop (a Redis client binds to it)
    app.state.registry = None
    app.state.batchers = None  # Batchers by predictor name, started with the lifespan when dynamic_batching is on
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=settings.max_body_bytes,
        path_limits={
            ONNX_PATH: (settings.max_onnx_bytes, "ARCHCAST_MAX_ONNX_BYTES"),
            ONNX_CALIBRATE_PATH: (settings.max_calibration_upload_bytes, "ARCHCAST_MAX_CALIBRATION_UPLOAD_BYTES"),
        },
    )
    app.add_middleware(
        ApiKeyAuth,
        keys=settings.api_keys,
        protect_health=settings.api_keys_for_health,
        protect_metrics=settings.api_keys_for_metrics,
    )  # before BodySizeLimit: an unauthorised upload is refused before its body is read
    app.add_middleware(HTTPMetrics, metrics=metrics)  # also counts requests refused by ApiKeyAuth and BodySizeLimit
    app.add_middleware(RequestContext)  # outermost: every response, refusals included, carries X-Request-ID
    app.include_router(health.router)
    app.include_router(predictors.router)
    app.include_router(predict.router)
    app.include_router(predict_onnx.router)
    app.include_router(calibrate.router)
    app.include_router(metrics_router.router)
    _add_error_handlers(app)
    return app


class StartupRefused(RuntimeError):
    """The predictors on disk are not all usable; the service exits instead of half-serving."""


def refuse_incomplete(registry: Registry, settings: Settings) -> None:
    """Raise ``StartupRefused`` naming every problem when the registry is not ready (a card failed, or none found)."""
    if registry.ready:
        return
    problems = registry.errors or [f"no predictor cards (*.card.json) in {settings.predictor_dir}"]
    message = (
        "refusing to start: "
        + "; ".join(problems)
        + " (fix or remove the predictor files, point ARCHCAST_PREDICTOR_DIR elsewhere, or set "
        "ARCHCAST_STRICT_STARTUP=false to serve the predictors that did load)"
    )
    log.critical(message)
    raise StartupRefused(message)


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _json_error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ArchitectureError)
    async def architecture_error(request: Request, exc: ArchitectureError) -> JSONResponse:
        return _json_error(422, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        registry = getattr(request.app.state, "registry", None)
        spaces = registry.spaces if registry is not None else []
        return _json_error(*describe_validation_errors(list(exc.errors()), spaces))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 400:
            message = f"request body could not be parsed as JSON ({message})"
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _json_error(500, "internal_error", "internal server error")
