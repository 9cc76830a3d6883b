"""The predict pipeline: parse -> validate -> canonicalize -> cache lookup -> tokenize the misses -> one ONNX run -> pick targets.

CPU work (planning, tokenizing, the ONNX run) runs in the thread pool so the event loop stays free for other requests;
a small request of fixed-size cells is planned on the event loop, since its planning (~10-200 us) costs less than the
hand-off to a pool thread and back (``plans_inline``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from model.canonical import canonicalize
from model.errors import ArchitectureError
from model.ir import ArchGraph, validate
from model.parsers import parse_darts, parse_json_dag, parse_nb101, parse_nb201_network
from model.parsers.fbnet import parse_fbnet
from model.parsers.ofa import parse_ofa
from model.tokenizer import tokenize_graphs
from service.cache import Prediction, PredictionCache
from service.errors import ServiceError
from service.metrics import ServiceMetrics
from service.nb201_index import nb201_arch_string
from service.predictor import Predictor, Registry
from service.schemas import (
    Architecture,
    DartsArchitecture,
    FBNetArchitecture,
    GraphArchitecture,
    NB101Architecture,
    NB201Architecture,
    OFAArchitecture,
    PredictRequest,
)

if TYPE_CHECKING:
    from service.batcher import Arrival, Batchers

NB201_MEMO_SIZE = 65_536
INLINE_PLAN_ARCHITECTURES = 4  # at most this many fixed-size cells are planned on the event loop


@dataclass(frozen=True)
class Prepared:
    """An architecture ready for the predictor: canonical key and graph renumbered into canonical order."""

    key: str
    graph: ArchGraph


def _canonical(graph: ArchGraph, max_nodes: int) -> Prepared:
    validate(graph, max_nodes=max_nodes)
    canonical = canonicalize(graph)
    return Prepared(key=canonical.key, graph=graph.renumbered(canonical.order))


@lru_cache(maxsize=NB201_MEMO_SIZE)
def _prepare_nb201(arch: str, max_nodes: int) -> Prepared:
    """Parse + validate + canonicalize of an NB201 arch string (pure, so memoised; errors are not cached).

    A cell with a twin (the same network with its intermediate nodes swapped) becomes the pair's representative, so
    both arch strings share one cache key and one answer.
    """
    return _canonical(parse_nb201_network(arch), max_nodes)


def prepare(arch: Architecture, max_nodes: int, data_dir: Path | None) -> Prepared:
    """Parse an architecture with the parser of its space and bring it into canonical order."""
    if isinstance(arch, NB201Architecture):
        text = arch.arch if arch.arch is not None else nb201_arch_string(arch.index or 0, data_dir)
        return _prepare_nb201(text, max_nodes)
    if isinstance(arch, NB101Architecture):
        return _canonical(parse_nb101(arch.matrix, arch.ops), max_nodes)
    if isinstance(arch, DartsArchitecture):
        return _canonical(parse_darts(arch.normal, arch.reduce), max_nodes)
    if isinstance(arch, GraphArchitecture):
        nodes = [node if isinstance(node, str) else node.model_dump() for node in arch.nodes]
        return _canonical(parse_json_dag(nodes, arch.edges), max_nodes)
    if isinstance(arch, FBNetArchitecture):
        return _canonical(parse_fbnet(arch.layers), max_nodes)
    if isinstance(arch, OFAArchitecture):
        return _canonical(parse_ofa(arch.ks, arch.e, arch.d, arch.r), max_nodes)
    raise TypeError(f"unhandled architecture type {type(arch).__name__}")


def choose_predictor(
    registry: Registry,
    name: str | None,
    spaces: Sequence[str],
    targets: Sequence[str] | None = None,
    ops: set[str] | None = None,
) -> Predictor:
    """The named predictor, or the loaded one supporting every space (and every requested target and every op of
    the architectures, if one does).

    Among several, the card with the highest ``priority`` wins, then the first by name.
    """
    if not registry.predictors:
        raise ServiceError(503, "not_ready", "no predictor is loaded; see GET /readyz")
    loaded = ", ".join(sorted(registry.predictors))
    if name is not None:
        predictor = registry.predictors.get(name)
        if predictor is None:
            raise ServiceError(404, "unknown_predictor", f"predictor {name!r} is not loaded; loaded predictors: {loaded}")
        unsupported = [space for space in spaces if space not in predictor.card.spaces]
        if unsupported:
            raise ServiceError(
                422,
                "unsupported_space",
                f"predictor {name!r} does not support space(s) {', '.join(unsupported)}; "
                f"it supports: {', '.join(predictor.card.spaces)}",
            )
        return predictor
    supported = registry.spaces
    unsupported = [space for space in spaces if space not in supported]
    if unsupported:
        raise ServiceError(
            422,
            "unsupported_space",
            f"no loaded predictor supports space(s) {', '.join(unsupported)}; supported spaces: {', '.join(supported)}",
        )
    eligible = [p for p in registry.predictors.values() if set(spaces) <= set(p.card.spaces)]
    eligible.sort(key=lambda p: (-p.card.priority, p.name))
    if targets:
        offering = [p for p in eligible if set(targets) <= set(p.card.target_names)]
        eligible = offering or eligible  # none offers them all: the default one answers with unknown_target
    if ops:
        covering = [p for p in eligible if ops <= p.allowed_ops]
        eligible = covering or eligible  # none accepts every op: the default one answers with unsupported_op
    if eligible:
        return eligible[0]
    coverage = "; ".join(f"{p.name}: {', '.join(p.card.spaces)}" for p in registry.predictors.values())
    raise ServiceError(
        422,
        "mixed_spaces",
        f"no loaded predictor supports all spaces of the request ({', '.join(spaces)}); send one request per predictor "
        f"({coverage})",
    )


def resolve_targets(predictor: Predictor, requested: Sequence[str] | None) -> list[str]:
    names = predictor.card.target_names
    if requested is None:
        return names
    unknown = [t for t in requested if t not in names]
    if unknown:
        raise ServiceError(
            422,
            "unknown_target",
            f"unknown target(s) {', '.join(map(repr, unknown))} for predictor {predictor.name!r}; "
            f"valid targets: {', '.join(names)}",
        )
    return list(dict.fromkeys(requested))


@dataclass(frozen=True)
class Plan:
    """A checked request: the predictor, the targets to return and each architecture in canonical form."""

    predictor: Predictor
    targets: list[str]
    prepared: list[Prepared]


def plan_request(request: PredictRequest, registry: Registry, *, max_batch: int, max_nodes: int, data_dir: Path | None) -> Plan:
    """Choose the predictor and targets and parse, validate and canonicalize every architecture (CPU work, no I/O)."""
    count = len(request.architectures)
    if count > max_batch:
        raise ServiceError(
            413, "batch_too_large", f"request has {count} architectures; the limit is {max_batch} (ARCHCAST_MAX_BATCH)"
        )
    spaces = list(dict.fromkeys(arch.space for arch in request.architectures))
    predictor = choose_predictor(registry, request.predictor, spaces, request.targets)
    prepared: list[Prepared] = []
    for i, arch in enumerate(request.architectures):
        try:
            prepared.append(prepare(arch, max_nodes, data_dir))
        except ArchitectureError as exc:
            raise ArchitectureError(exc.code, f"architectures.{i}: {exc.message}") from None
        except ServiceError as exc:
            raise ServiceError(exc.status, exc.code, f"architectures.{i}: {exc.message}") from None
    ops = {op for item in prepared for op in item.graph.ops}
    if request.predictor is None and not ops <= predictor.allowed_ops:  # e.g. a generic DAG of NB101 ops
        predictor = choose_predictor(registry, None, spaces, request.targets, ops)
    targets = resolve_targets(predictor, request.targets)
    for i, item in enumerate(prepared if not ops <= predictor.allowed_ops else ()):  # name the first offender
        bad_ops = sorted(set(item.graph.ops) - predictor.allowed_ops)
        if bad_ops:
            raise ServiceError(
                422,
                "unsupported_op",
                f"architectures.{i}: operation(s) {', '.join(bad_ops)} not supported by predictor {predictor.name!r}; "
                f"supported: {', '.join(predictor.card.ops)}",
            )
    return Plan(predictor=predictor, targets=targets, prepared=prepared)


def plans_inline(request: PredictRequest) -> bool:
    """Whether ``plan_request`` runs on the event loop: a few cells of bounded size, none that reads a file.

    A generic graph (up to ``max_nodes`` nodes) and an NB201 cell by table index (the table loads on first use) go to
    the thread pool, as does any larger request.
    """
    return len(request.architectures) <= INLINE_PLAN_ARCHITECTURES and not any(
        isinstance(arch, GraphArchitecture) or (isinstance(arch, NB201Architecture) and arch.arch is None)
        for arch in request.architectures
    )


def compute(predictor: Predictor, graphs: list[ArchGraph], metrics: ServiceMetrics | None = None) -> list[Prediction]:
    """Every target of each graph from one ONNX run (CPU-bound: call it off the event loop)."""
    started = time.perf_counter()
    batch = tokenize_graphs(graphs)
    tokenized = time.perf_counter()
    rows = predictor.run(batch)
    if metrics is not None:
        metrics.tokenize_seconds.observe(tokenized - started)
        metrics.inference_seconds.observe(time.perf_counter() - tokenized)
        metrics.batch_size.observe(len(graphs))
    names = predictor.card.target_names
    return [dict(zip(names, map(float, row), strict=True)) for row in rows]


def predictive_std(value: float, transform: str, sigma: float) -> float:
    """The std in target units of a prediction whose regressed quantity has std ``sigma`` (the value is its median).

    ``log``: the value is log-normal; ``log_error``: 100 - value is log-normal (accuracy %); else Gaussian.
    """
    spread = math.sqrt(math.expm1(sigma * sigma) * math.exp(sigma * sigma))  # std / median of a log-normal
    if transform == "log":
        return value * spread
    if transform == "log_error":
        return max(100.0 - value, 0.0) * spread
    return sigma


async def predict(
    request: PredictRequest,
    registry: Registry,
    cache: PredictionCache,
    *,
    max_batch: int,
    max_nodes: int,
    data_dir: Path | None,
    metrics: ServiceMetrics | None = None,
    batchers: Batchers | None = None,
) -> dict:
    """The response body of ``POST /v1/predict`` (see ``PredictResponse``); CPU work runs in the thread pool.

    When ``batchers`` (dynamic batching, by predictor name) has one for the chosen predictor, the cache misses share an
    ONNX run with concurrent requests; otherwise they get a run of their own.
    """
    if not batchers:
        return await _predict(request, registry, cache, max_batch, max_nodes, data_dir, metrics, None, None)
    with batchers.arrive() as arrival:
        return await _predict(request, registry, cache, max_batch, max_nodes, data_dir, metrics, batchers, arrival)


async def _predict(
    request: PredictRequest,
    registry: Registry,
    cache: PredictionCache,
    max_batch: int,
    max_nodes: int,
    data_dir: Path | None,
    metrics: ServiceMetrics | None,
    batchers: Batchers | None,
    arrival: Arrival | None,
) -> dict:
    limits = {"max_batch": max_batch, "max_nodes": max_nodes, "data_dir": data_dir}
    if plans_inline(request):
        plan = plan_request(request, registry, **limits)
    else:
        plan = await run_in_threadpool(plan_request, request, registry, **limits)
    predictor, card = plan.predictor, plan.predictor.card
    prefix = f"{card.name}@{card.version}:"
    cache_keys = [prefix + item.key for item in plan.prepared]
    names = card.target_names
    values: dict[str, Prediction] = {}
    for cache_key, hit in zip(cache_keys, await cache.get_many(cache_keys), strict=True):
        if hit is not None and all(name in hit for name in names):
            values[cache_key] = hit
    missing = {key: item.graph for key, item in zip(cache_keys, plan.prepared, strict=True) if key not in values}
    if missing:
        batcher = batchers.get(predictor.name) if batchers else None
        if batcher is not None:
            rows = await batcher.submit(list(missing), list(missing.values()), arrival)
        else:
            rows = await run_in_threadpool(compute, predictor, list(missing.values()), metrics)
        computed = dict(zip(missing, rows, strict=True))
        await cache.set_many(computed)
        values.update(computed)

    units = {t.name: t.unit for t in card.targets}
    spreads = {t.name: (t.transform, t.metrics["std_log"]) for t in card.targets if "std_log" in t.metrics}

    def target_value(value: float, target: str) -> dict:
        std = predictive_std(value, *spreads[target]) if target in spreads else None
        return {"value": value, "unit": units[target], "std": std}

    results = [
        {"key": item.key, "predictions": {t: target_value(values[cache_key][t], t) for t in plan.targets}}
        for cache_key, item in zip(cache_keys, plan.prepared, strict=True)
    ]
    if metrics is not None:
        hits = sum(key not in missing for key in cache_keys)
        metrics.child(metrics.cache_requests, "hit").inc(hits)
        metrics.child(metrics.cache_requests, "miss").inc(len(cache_keys) - hits)
        for target in plan.targets:
            metrics.child(metrics.predictions, card.name, target).inc(len(results))
    return {"predictor": card.name, "version": card.version, "results": results}
