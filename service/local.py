"""In-process predictions without a server (``archcast predict`` / ``archcast rank``): the pipeline on a fresh registry.

Bad input raises ``ServiceError`` / ``ArchitectureError`` with the same codes and messages as the HTTP API; indices in
messages (``architectures.<i>``) count over the whole list even when it is predicted in several batches.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from model.errors import ArchitectureError
from service.cache import NullCache
from service.errors import ServiceError
from service.pipeline import predict
from service.predictor import Registry, load_service_registry
from service.schemas import PredictRequest
from service.settings import Settings
from service.validation import describe_validation_errors

_INDEX = re.compile(r"^architectures\.(\d+)")


def load_for_local(settings: Settings) -> Registry:
    """Every predictor of ``settings.predictor_dir`` (and ``calibration_dir``); 503 ``not_ready`` when none loads."""
    registry = load_service_registry(settings)
    if not registry.predictors and not registry.networks:
        problems = "; ".join(registry.errors) or f"no predictor cards in {settings.predictor_dir}"
        raise ServiceError(503, "not_ready", f"no predictor is loaded: {problems}")
    return registry


def shift_index(message: str, offset: int) -> str:
    """``architectures.<i>: ...`` with ``i`` moved by ``offset`` (a batch's position in the whole list)."""
    return _INDEX.sub(lambda m: f"architectures.{int(m.group(1)) + offset}", message) if offset else message


def predict_local_many(
    architectures: Sequence[dict[str, Any]],
    targets: list[str] | None = None,
    predictor: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The ``POST /v1/predict`` response body for any number of architectures (batches of ``settings.max_batch``)."""
    settings = settings or Settings()
    registry = load_for_local(settings)
    step = settings.max_batch
    requests: list[PredictRequest] = []
    for offset in range(0, max(len(architectures), 1), step):
        body = {"architectures": list(architectures[offset : offset + step]), "targets": targets, "predictor": predictor}
        try:
            requests.append(PredictRequest.model_validate(body))
        except ValidationError as exc:
            status, code, message = describe_validation_errors(list(exc.errors()), registry.spaces)
            raise ServiceError(status, code, shift_index(message, offset)) from None

    async def run_all() -> list[dict[str, Any]]:
        bodies = []
        for number, request in enumerate(requests):
            try:
                bodies.append(
                    await predict(
                        request, registry, NullCache(), max_batch=step, max_nodes=settings.max_nodes, data_dir=settings.data_dir
                    )
                )
            except ServiceError as exc:
                raise ServiceError(exc.status, exc.code, shift_index(exc.message, number * step), exc.headers) from None
            except ArchitectureError as exc:
                raise ArchitectureError(exc.code, shift_index(exc.message, number * step)) from None
        return bodies

    bodies = asyncio.run(run_all())
    return {
        "predictor": bodies[0]["predictor"],
        "version": bodies[0]["version"],
        "answered_by": bodies[0]["answered_by"],
        "results": [result for body in bodies for result in body["results"]],
    }


def predict_onnx_local(
    data: bytes,
    batch: int = 1,
    resolution: int = 224,
    predictor: str | None = None,
    device: str | None = None,
    settings: Settings | None = None,
    sequence_length: int = 128,
    breakdown: bool = False,
    past_length: int = 128,
) -> dict[str, Any]:
    """The ``POST /v1/predict/onnx`` body for one ONNX model, in-process (``archcast predict model.onnx``)."""
    from model.onnx_graph import ParseOptions
    from service.network_predictor import predict_onnx_bytes
    from service.routers.predict_onnx import choose_network_predictor

    settings = settings or Settings()
    if len(data) > settings.max_onnx_bytes:
        raise ServiceError(
            413, "body_too_large", f"model of {len(data)} bytes exceeds {settings.max_onnx_bytes} (ARCHCAST_MAX_ONNX_BYTES)"
        )
    chosen = choose_network_predictor(load_for_local(settings), predictor, device)
    options = ParseOptions(
        batch=batch,
        resolution=resolution,
        sequence_length=sequence_length,
        past_length=past_length,
        max_nodes=settings.max_network_nodes,
    )
    return predict_onnx_bytes(chosen, data, options, with_breakdown=breakdown)
