"""Service configuration from ``ARCHCAST_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.card import PREDICTOR_DIR
from model.ir import DEFAULT_MAX_NODES


class Settings(BaseSettings):
    """Every field can be set as ``ARCHCAST_<FIELD NAME>`` (e.g. ``ARCHCAST_MAX_BATCH=1024``)."""

    model_config = SettingsConfigDict(env_prefix="ARCHCAST_", extra="forbid")

    predictor_dir: Path = Field(
        default=PREDICTOR_DIR, description="Directory holding the predictor cards (*.card.json) and their ONNX files."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Shared benchmark data directory, used to resolve NB201 indices; None leaves it to model.tables "
        "(ARCHCAST_DATA_DIR or ../shared/data).",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port the HTTP server listens on.")
    max_batch: int = Field(default=4096, ge=1, description="Most architectures one request may carry (413 above it).")
    max_nodes: int = Field(
        default=DEFAULT_MAX_NODES, ge=2, le=DEFAULT_MAX_NODES, description="Most nodes one architecture graph may have."
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1, description="Largest accepted request body in bytes (413 above it)."
    )
    cache_size: int = Field(default=100_000, ge=0, description="Entries of the in-process prediction LRU cache; 0 disables it.")
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="onnxruntime execution provider: 'auto' uses CUDA only if a CUDA session really works, else CPU; "
        "'cuda' fails at start-up without a working CUDA provider.",
    )
    ort_threads: int = Field(default=0, ge=0, description="onnxruntime intra-op threads per session; 0 keeps the ORT default.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the service and of uvicorn."
    )
