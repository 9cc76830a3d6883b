"""Running the service: ``serve(settings)`` starts uvicorn (one process, or a supervisor with ``settings.workers``
worker processes that restarts any that dies) on the app built by ``create_app``, with the service's log set-up."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.logs import configure_logging
from service.metrics import MULTIPROC_ENV
from service.settings import Settings


def app_from_env() -> FastAPI:
    """The factory each worker process calls: settings from ``ARCHCAST_*``, logging configured, app built."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def _fresh_multiprocess_dir() -> None:
    """prometheus-client's multiprocess directory must exist and be empty before any worker starts."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True)
    else:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="archcast-metrics-")


def uvicorn_options(settings: Settings) -> dict[str, object]:
    """uvicorn's options for every worker; its event loop and HTTP parser stay "auto": uvloop and httptools, which
    the service depends on, where they install."""
    return {
        "host": settings.host, "port": settings.port, "log_level": settings.log_level,
        "log_config": None, "access_log": False,  # our handler formats uvicorn's lines; RequestContext logs access
    }


def serve(settings: Settings | None = None) -> None:
    """Serve the API on ``settings.host:settings.port`` until interrupted."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    common = uvicorn_options(settings)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    _fresh_multiprocess_dir()
    # workers build their own app from the environment: pass every explicit setting through it
    for name, value in settings.model_dump(exclude_unset=True).items():
        key = f"ARCHCAST_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = ",".join(value) if isinstance(value, list) else str(value)
    uvicorn.run("service.main:app_from_env", factory=True, workers=settings.workers, **common)
