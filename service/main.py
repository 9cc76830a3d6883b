"""Running the service: ``serve(settings)`` starts uvicorn on the app built by ``create_app``."""

from __future__ import annotations

import logging

import uvicorn

from service.app import create_app
from service.settings import Settings


def serve(settings: Settings | None = None) -> None:
    """Serve the API on ``settings.host:settings.port`` until interrupted."""
    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
