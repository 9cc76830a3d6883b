"""``POST /v1/predict/onnx``: latency of a whole ONNX network (raw body or multipart ``file``) plus its cost summary.

The model's bytes never touch the disk and external-data references are never followed. Answers are cached by
(predictor, version, SHA-256 of the upload, batch, resolution), so a CI pipeline re-sending the same model costs
one cache lookup. Parsing runs in a worker thread bounded by ``parse_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from model.errors import ArchitectureError
from model.network_domain import GraphFacts, domain_warnings
from model.onnx_graph import PARSER_VERSION, ParseOptions
from service.cache import PredictionCache
from service.calibrate import PREFIX, load_persisted
from service.deps import get_cache, get_registry, get_settings
from service.errors import ServiceError
from service.middleware import BodyTooLarge
from service.network_predictor import NetworkPredictor, model_digest, predict_onnx_bytes
from service.predictor import Registry
from service.schemas import error_responses
from service.settings import Settings

ONNX_PATH = "/v1/predict/onnx"
UNSEEN_OP = "unseen_op:"  # cached values: one key per op type the predictor's training networks never had
WEIGHT_TYPE = "weight_type:"  # and one per element type of the upload's weights
router = APIRouter(prefix="/v1", tags=["predict"], responses=error_responses(400, 401, 404, 413, 415, 422, 503))
COST_FIELDS = ("flops", "macs", "params", "memory_bytes", "nodes")


def choose_network_predictor(registry: Registry, name: str | None, device: str | None) -> NetworkPredictor:
    if not registry.networks:
        raise ServiceError(404, "no_network_predictor", "no whole-network (ONNX) predictor is loaded")
    loaded = ", ".join(f"{p.name} (device {p.device})" for p in registry.networks.values())
    candidates = list(registry.networks.values())
    if name is not None:
        candidates = [p for p in candidates if p.name == name]
    if device is not None:
        candidates = [p for p in candidates if p.device == device]
    if not candidates:
        raise ServiceError(
            404, "unknown_predictor", f"no network predictor matches predictor={name!r} device={device!r}; loaded: {loaded}"
        )
    return sorted(candidates, key=lambda p: (-p.card.priority, p.name))[0]  # highest priority, then first by name


async def read_form(request: Request, max_files: int, max_fields: int) -> FormData:
    """The multipart form; a malformed one, or one with more files or fields than allowed, is a 400 saying why."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except BodyTooLarge:
        raise
    except HTTPException as exc:
        raise ServiceError(400, "invalid_multipart", f"multipart body could not be read: {exc.detail}") from None


async def read_upload(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_files=1, max_fields=8)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(422, "missing_file", "multipart upload needs the ONNX model in a form field named 'file'")
        return await upload.read()
    if content_type.startswith(("application/json", "text/")):
        raise ServiceError(
            415,
            "unsupported_media_type",
            f"send the ONNX model as the raw body (application/octet-stream) or as multipart field 'file', not {content_type!r}",
        )
    return await request.body()


@router.post(
    "/predict/onnx",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                },
            },
            "required": True,
        }
    },
)
async def predict_onnx_route(
    request: Request,
    registry: Annotated[Registry, Depends(get_registry)],
    cache: Annotated[PredictionCache, Depends(get_cache)],
    settings: Annotated[Settings, Depends(get_settings)],
    batch: Annotated[int, Query(ge=1, description="Batch size for the model's symbolic batch dimension.")] = 1,
    resolution: Annotated[int, Query(ge=8, description="Input resolution for symbolic image dimensions.")] = 224,
    sequence_length: Annotated[
        int, Query(ge=1, description="Sequence length for symbolic dimensions of 2-D / 3-D inputs (tokens, steps).")
    ] = 128,
    past_length: Annotated[
        int,
        Query(
            ge=1,
            description="Cache length for symbolic dimensions named for a KV cache (past_sequence_length; a total "
            "length is past + sequence length).",
        ),
    ] = 128,
    predictor: Annotated[str | None, Query(description="Network predictor name; default: the only/first one.")] = None,
    device: Annotated[str | None, Query(description="Device the latency is predicted for, e.g. cpu-ort-1t.")] = None,
    breakdown: Annotated[
        bool, Query(description="Also say where the predicted time goes: per op type and the top nodes (not cached).")
    ] = False,
) -> dict[str, Any]:
    """Predicted latency (value and std, ms) of an uploaded ONNX model on the predictor's device, plus its cost summary."""
    if batch > settings.max_onnx_batch:
        raise ServiceError(
            422, "batch_too_large", f"batch={batch} exceeds the limit of {settings.max_onnx_batch} (ARCHCAST_MAX_ONNX_BATCH)"
        )
    if resolution > settings.max_resolution:
        raise ServiceError(
            422,
            "resolution_too_large",
            f"resolution={resolution} exceeds the limit of {settings.max_resolution} (ARCHCAST_MAX_RESOLUTION)",
        )
    if sequence_length > settings.max_sequence_length:
        raise ServiceError(
            422,
            "sequence_length_too_large",
            f"sequence_length={sequence_length} exceeds the limit of {settings.max_sequence_length} "
            "(ARCHCAST_MAX_SEQUENCE_LENGTH)",
        )
    if past_length > settings.max_sequence_length:
        raise ServiceError(
            422,
            "past_length_too_large",
            f"past_length={past_length} exceeds the limit of {settings.max_sequence_length} (ARCHCAST_MAX_SEQUENCE_LENGTH)",
        )
    if settings.calibration_dir is not None:  # a calibration another worker (or `archcast calibrate`) wrote
        named = [predictor] if predictor is not None else [PREFIX + device] if device is not None else []
        if any(n.startswith(PREFIX) for n in named):
            await run_in_threadpool(load_persisted, registry, settings, named)
    chosen = choose_network_predictor(registry, predictor, device)
    data = await read_upload(request)
    shape = (batch, resolution, sequence_length, past_length)
    digest = model_digest(data)
    key = f"{chosen.name}@{chosen.card.version}:onnx{PARSER_VERSION}:{digest}:{':'.join(map(str, shape))}"
    (cached,) = await cache.get_many([key])
    if cached is not None and not breakdown:  # a breakdown needs the parsed graph: no shortcut
        return _body(chosen, cached, shape, cache_hit=True)
    options = ParseOptions(
        batch=batch,
        resolution=resolution,
        sequence_length=sequence_length,
        past_length=past_length,
        max_nodes=settings.max_network_nodes,
    )
    try:
        result = await asyncio.wait_for(
            run_in_threadpool(predict_onnx_bytes, chosen, data, options, breakdown), settings.parse_timeout_seconds
        )
    except TimeoutError:
        raise ServiceError(
            422,
            "parse_timeout",
            f"parsing the model took longer than {settings.parse_timeout_seconds} s (ARCHCAST_PARSE_TIMEOUT_SECONDS)",
        ) from None
    except ArchitectureError as exc:
        status = 413 if exc.code == "too_large" else 422
        raise ServiceError(status, exc.code, exc.message) from None
    values = {"latency_ms": result["latency_ms"]["value"], "latency_ms_std": result["latency_ms"]["std"]}
    values.update({f"cost_{k}": float(result["cost"][k]) for k in COST_FIELDS})
    values.update({f"{UNSEEN_OP}{op}": 1.0 for op in result["unseen_op_types"]})
    values.update({f"{WEIGHT_TYPE}{name}": 1.0 for name in result["weight_types"]})
    values.update(GraphFacts.from_body(result).to_values())
    await cache.set_many({key: values})
    body = _body(chosen, values, shape, cache_hit=False)
    body["input_shapes"] = result["input_shapes"]
    body["timing_ms"] = result["timing_ms"]
    if breakdown:
        body["breakdown"] = result["breakdown"]
    return body


def _body(
    chosen: NetworkPredictor, values: dict[str, float], shape: tuple[int, int, int, int], cache_hit: bool
) -> dict[str, Any]:
    batch, resolution, sequence_length, past_length = shape
    weight_types = sorted(k.removeprefix(WEIGHT_TYPE) for k in values if k.startswith(WEIGHT_TYPE))
    facts = GraphFacts.from_values(values)
    return {
        "predictor": chosen.name,
        "version": chosen.card.version,
        "device": chosen.device,
        "batch": batch,
        "resolution": resolution,
        "sequence_length": sequence_length,
        "past_length": past_length,
        "latency_ms": {"value": values["latency_ms"], "std": values["latency_ms_std"]},
        "cost": {k: (int(values[f"cost_{k}"]) if k == "nodes" else values[f"cost_{k}"]) for k in COST_FIELDS},
        "weight_types": weight_types,
        **facts.to_body(),
        "warnings": domain_warnings(
            [k.removeprefix(UNSEEN_OP) for k in values if k.startswith(UNSEEN_OP)],
            values["cost_macs"],
            int(values["cost_nodes"]),
            chosen.card.domain,
            weight_types,
            chosen.dtype,
            facts,
        ),
        "cached": cache_hit,
    }
