"""The predict pipeline: parse -> validate -> canonicalize -> cache lookup -> tokenize the misses -> one ONNX run -> pick targets.

A request that names no predictor and asks for targets no single predictor offers (e.g. an accuracy and a device
latency of NB201) is answered by several: each target by the first predictor, by priority, that offers it; each such
predictor has its own cache entries and its own ONNX run.

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
from model.card import TargetCard
from model.errors import ArchitectureError
from model.ir import ArchGraph, validate
from model.nb201_canonical import canonical_nb201
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
    both arch strings share one cache key and one answer. The canonical form comes from the precomputed table
    (``model.nb201_canonical``), which holds what ``canonicalize`` gives for every cell.
    """
    graph = validate(parse_nb201_network(arch), max_nodes=max_nodes)
    canonical = canonical_nb201(graph.ops[1:-1])
    return Prepared(key=canonical.key, graph=graph.renumbered(canonical.order))


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


def _eligible(registry: Registry, spaces: Sequence[str], ops: set[str]) -> list[Predictor]:
    """The loaded predictors supporting every space and accepting every op, by priority then name."""
    found = [p for p in registry.predictors.values() if set(spaces) <= set(p.card.spaces) and ops <= p.allowed_ops]
    return sorted(found, key=lambda p: (-p.card.priority, p.name))


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
    eligible = _eligible(registry, spaces, set())
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


def assign_targets(
    primary: Predictor, requested: Sequence[str], others: Sequence[Predictor], spaces: Sequence[str]
) -> dict[str, Predictor]:
    """Each requested target's predictor: ``primary`` where it offers the target, else the first of ``others``.

    A target none offers is 422 ``unknown_target``, naming the valid targets of ``primary`` and of the others.
    """
    owners: dict[str, Predictor] = {}
    unknown: list[str] = []
    for target in dict.fromkeys(requested):
        owner = next((p for p in (primary, *others) if target in p.card.target_names), None)
        if owner is None:
            unknown.append(target)
        else:
            owners[target] = owner
    if unknown:
        message = (
            f"unknown target(s) {', '.join(map(repr, unknown))} for predictor {primary.name!r}; "
            f"valid targets: {', '.join(primary.card.target_names)}"
        )
        extra = [t for p in others for t in p.card.target_names if t not in primary.card.target_names]
        if extra:
            message += f"; other predictors of space(s) {', '.join(spaces)} offer: {', '.join(dict.fromkeys(extra))}"
        raise ServiceError(422, "unknown_target", message)
    return owners


@dataclass(frozen=True)
class Part:
    """One predictor of a plan and the requested targets it answers."""

    predictor: Predictor
    targets: list[str]


@dataclass(frozen=True)
class Plan:
    """A checked request: the predictors and the targets each answers, and each architecture in canonical form.

    ``parts[0]`` holds the primary predictor (the named one, else the default for the spaces); more parts only when
    the requested targets span predictors. ``targets`` is every target to return, in request order.
    """

    parts: list[Part]
    targets: list[str]
    prepared: list[Prepared]

    @property
    def predictor(self) -> Predictor:
        return self.parts[0].predictor


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
    for i, item in enumerate(prepared if not ops <= predictor.allowed_ops else ()):  # name the first offender
        bad_ops = sorted(set(item.graph.ops) - predictor.allowed_ops)
        if bad_ops:
            raise ServiceError(
                422,
                "unsupported_op",
                f"architectures.{i}: operation(s) {', '.join(bad_ops)} not supported by predictor {predictor.name!r}; "
                f"supported: {', '.join(predictor.card.ops)}",
            )
    requested = request.targets
    if request.predictor is not None or requested is None or set(requested) <= set(predictor.card.target_names):
        targets = resolve_targets(predictor, requested)
        return Plan(parts=[Part(predictor, targets)], targets=targets, prepared=prepared)
    others = [p for p in _eligible(registry, spaces, ops) if p is not predictor]
    owners = assign_targets(predictor, requested, others, spaces)
    answering = {owner.name: owner for owner in owners.values()}  # in request order
    parts = [Part(p, [t for t, owner in owners.items() if owner is p]) for p in answering.values()]
    parts.sort(key=lambda part: part.predictor is not predictor)  # the primary first, then in request order
    return Plan(parts=parts, targets=list(owners), prepared=prepared)


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


def response_body(plan: Plan, part_keys: list[list[str]], values: dict[str, Prediction]) -> dict:
    """The ``PredictResponse`` body: ``values`` holds every row by cache key, ``part_keys[i][j]`` the key of
    architecture ``j`` under ``plan.parts[i]``'s predictor."""
    sources: dict[str, tuple[list[str], TargetCard]] = {}  # target -> (its part's keys, its card entry)
    for part, keys in zip(plan.parts, part_keys, strict=True):
        cards = {t.name: t for t in part.predictor.card.targets}
        sources.update((target, (keys, cards[target])) for target in part.targets)

    def target_value(row: int, target: str) -> dict:
        keys, entry = sources[target]
        value = values[keys[row]][target]
        sigma = entry.metrics.get("std_log")
        std = predictive_std(value, entry.transform, sigma) if sigma is not None else None
        return {"value": value, "unit": entry.unit, "std": std}

    results = [
        {"key": item.key, "predictions": {t: target_value(row, t) for t in plan.targets}}
        for row, item in enumerate(plan.prepared)
    ]
    primary = plan.predictor.card
    answered_by = [
        {"predictor": part.predictor.card.name, "version": part.predictor.card.version, "targets": part.targets}
        for part in plan.parts
    ]
    return {"predictor": primary.name, "version": primary.version, "answered_by": answered_by, "results": results}


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
    prefixes = [f"{part.predictor.card.name}@{part.predictor.card.version}:" for part in plan.parts]
    part_keys = [[prefix + item.key for item in plan.prepared] for prefix in prefixes]
    found = iter(await cache.get_many([key for keys in part_keys for key in keys]))  # one lookup for every part
    values: dict[str, Prediction] = {}
    misses: list[tuple[Predictor, dict[str, ArchGraph]]] = []
    for part, keys in zip(plan.parts, part_keys, strict=True):
        names = part.predictor.card.target_names
        missing: dict[str, ArchGraph] = {}
        for cache_key, item in zip(keys, plan.prepared, strict=True):
            hit = next(found)
            if hit is not None and all(name in hit for name in names):
                values[cache_key] = hit
            else:
                missing[cache_key] = item.graph
        if missing:
            misses.append((part.predictor, missing))

    async def run(predictor: Predictor, missing: dict[str, ArchGraph]) -> dict[str, Prediction]:
        batcher = batchers.get(predictor.name) if batchers else None
        if batcher is not None:
            rows = await batcher.submit(list(missing), list(missing.values()), arrival)
        else:
            rows = await run_in_threadpool(compute, predictor, list(missing.values()), metrics)
        return dict(zip(missing, rows, strict=True))

    if misses:
        # one part after the other: two sessions' onnxruntime runs at once would contend for the same cores
        computed_parts = [await run(predictor, missing) for predictor, missing in misses]
        computed = {key: row for part in computed_parts for key, row in part.items()}
        await cache.set_many(computed)
        values.update(computed)

    body = response_body(plan, part_keys, values)
    if metrics is not None:
        missed = {key for _, missing in misses for key in missing}
        lookups = [key for keys in part_keys for key in keys]
        hits = sum(key not in missed for key in lookups)  # a repeated architecture counts once per occurrence
        metrics.child(metrics.cache_requests, "hit").inc(hits)
        metrics.child(metrics.cache_requests, "miss").inc(len(lookups) - hits)
        for part in plan.parts:
            for target in part.targets:
                metrics.child(metrics.predictions, part.predictor.card.name, target).inc(len(plan.prepared))
    return body
