"""Loading the predictor cards and their ONNX sessions once, with execution-provider selection.

``auto`` uses CUDA only when onnxruntime lists it AND a created session really runs on it (onnxruntime-gpu lists
CUDA even on machines without a GPU or CUDA libraries); otherwise the CPU provider.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from model.card import ModelCard, find_cards
from model.ir import ArchGraph, Node
from model.onnx_graph import symbolic_shape_module
from model.ops import INPUT, OP_CODES, OUTPUT
from model.tokenizer import TokenBatch, tokenize_graphs
from service.cpus import available_cpus
from service.errors import ServiceError
from service.network_predictor import NetworkPredictor, check_network_contract
from service.settings import Settings

log = logging.getLogger("archcast.service")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# full float32 on the GPU: TF32 matmuls would move predictions by ~1e-3 relative, and CUDA must agree with CPU to 1e-4
CUDA_OPTIONS = {"use_tf32": "0"}
INPUT_NAMES = ("tokens", "mask", "depth")
OUTPUT_NAME = "prediction"
# the exceptions onnxruntime raises from a session run (Fail, InvalidArgument, RuntimeException, EPFail, ...)
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    value for value in vars(ort_state).values() if isinstance(value, type) and issubclass(value, Exception)
)


@dataclass
class Predictor:
    """One loaded predictor: its card, its ONNX session and the provider the session runs on.

    ``small_session`` (CPU, when ``session`` has several intra-op threads) is a single-threaded session of the same
    graph for batches of at most ``small_batch`` architectures: below ~32 NB201 cells a second thread costs more than
    it gains, and its spinning takes the CPU the event loop needs (``benchmarks/results/ort_small_batch.md``).
    """

    card: ModelCard
    session: ort.InferenceSession
    provider: str
    onnx_path: Path | None = None  # where the graph was loaded from (a calibration builds on it)
    small_session: ort.InferenceSession | None = None
    small_batch: int = 0
    runs: int = 0  # session.run calls so far (one per request batch of cache misses)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def allowed_ops(self) -> frozenset[str]:
        return frozenset(self.card.ops) | {INPUT, OUTPUT}

    def run(self, batch: TokenBatch) -> np.ndarray:
        """Predictions (B, T) in target units, card target order.

        An onnxruntime failure is a server fault, raised as ServiceError 503 ``inference_failed``.
        """
        feeds = {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}
        session = self.small_session if self.small_session is not None and len(batch) <= self.small_batch else self.session
        try:
            (prediction,) = session.run([OUTPUT_NAME], feeds)
        except ORT_ERRORS as exc:
            log.error("onnxruntime run of predictor %s on %d architectures failed: %s", self.name, len(batch), exc)
            raise ServiceError(
                503, "inference_failed", f"predictor {self.name!r} failed to run on {len(batch)} architecture(s); retry later"
            ) from exc
        with self._lock:
            self.runs += 1
        return np.asarray(prediction, dtype=np.float64)


@dataclass
class Registry:
    """Every predictor found in the predictor directory, by name, plus the cards that failed to load."""

    predictors: dict[str, Predictor] = field(default_factory=dict)
    networks: dict[str, NetworkPredictor] = field(default_factory=dict)  # whole-network (ONNX upload) predictors
    errors: list[str] = field(default_factory=list)
    card_stamps: dict[str, int] = field(default_factory=dict)  # calibrated card name -> file mtime_ns last loaded

    @property
    def ready(self) -> bool:
        return bool(self.predictors or self.networks) and not self.errors

    @property
    def provider(self) -> str:
        providers = sorted({p.provider for p in [*self.predictors.values(), *self.networks.values()]})
        return ",".join(providers) if providers else CPU

    @property
    def spaces(self) -> list[str]:
        return sorted({space for p in self.predictors.values() for space in p.card.spaces})


def load_registry(directory: Path, providers: str = "auto", threads: int = 0, small_batch: int = 0) -> Registry:
    """Load every card in ``directory`` with its ONNX session; a card that fails is logged and listed in ``errors``.

    ``small_batch`` > 0 gives each cell predictor on a multi-threaded CPU session a single-threaded twin for batches of
    at most that many architectures (``Predictor.small_session``).
    """
    registry = Registry()
    cuda_works: bool | None = None if providers != "cpu" else False
    try:
        found = find_cards(directory)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        registry.errors.append(f"{directory}: cannot read predictor cards: {exc}")
        return registry
    if not found:
        log.warning("no predictor cards (*.card.json) in %s", directory)
    for card, onnx_path in found:
        if card.kind == "network":
            try:
                session, cuda_works = _create_session(onnx_path, providers, threads, cuda_works)
                check_network_contract(card, session)
            except Exception as exc:  # noqa: BLE001 - reported like a broken cell predictor
                registry.errors.append(f"predictor {card.name!r} ({onnx_path.name}): {exc}")
                log.error("failed to load %s", registry.errors[-1])
                continue
            if card.name in registry.networks or card.name in registry.predictors:
                registry.errors.append(f"predictor name {card.name!r} appears in more than one card")
                continue
            registry.networks[card.name] = NetworkPredictor(
                card=card, session=session, provider=session.get_providers()[0], onnx_path=onnx_path
            )
            log.info("loaded network predictor %s %s on %s", card.name, card.version, session.get_providers()[0])
            continue
        try:
            _check_card(card)
            session, cuda_works = _create_session(onnx_path, providers, threads, cuda_works)
            _check_contract(card, session)
            small = small_batch_session(str(onnx_path), session.get_providers()[0], threads, small_batch)
            if small is not None:
                _check_contract(card, small)  # also its warm-up run
        except Exception as exc:  # noqa: BLE001 - any broken predictor is reported, not fatal for the others
            message = f"predictor {card.name!r} ({onnx_path.name}): {exc}"
            log.error("failed to load %s", message)
            registry.errors.append(message)
            continue
        if card.name in registry.predictors:
            registry.errors.append(f"predictor name {card.name!r} appears in more than one card")
            continue
        provider = session.get_providers()[0]
        registry.predictors[card.name] = Predictor(
            card=card, session=session, provider=provider, onnx_path=onnx_path,
            small_session=small, small_batch=small_batch,
        )
        log.info("loaded predictor %s %s (%s) on %s", card.name, card.version, ", ".join(card.spaces), provider)
    return registry


def load_service_registry(settings: Settings) -> Registry:
    """The shipped predictors of ``predictor_dir`` plus the calibrated ones in ``calibration_dir`` (when it exists)."""
    threads = session_threads(settings)
    registry = load_registry(settings.predictor_dir, settings.providers, threads, settings.ort_small_batch)
    directory = settings.calibration_dir
    if directory is not None and directory.is_dir() and any(directory.glob("*.card.json")):
        extra = load_registry(directory, "cpu", threads, settings.ort_small_batch)
        for name, predictor in extra.predictors.items():
            if name in registry.predictors or name in registry.networks:
                registry.errors.append(f"predictor name {name!r} is in both {settings.predictor_dir} and {directory}")
                continue
            registry.predictors[name] = predictor
        for name, network in extra.networks.items():
            if name in registry.predictors or name in registry.networks:
                registry.errors.append(f"predictor name {name!r} is in both {settings.predictor_dir} and {directory}")
                continue
            registry.networks[name] = network
        registry.errors.extend(extra.errors)
    if registry.networks:  # load ONNX shape inference (sympy, ~0.3 s) at start-up rather than on the first upload
        symbolic_shape_module()
    return registry


def intra_op_threads(threads: int, workers: int = 1) -> int:
    """The intra-op thread count for a session: ``threads``, or when it is 0 one worker process's share of the CPUs
    this process may use (at least 1): with more threads than CPUs, a worker's idle onnxruntime threads take the CPU
    its event loop needs (``benchmarks/results/concurrency_wrk.md``)."""
    return threads if threads > 0 else max(1, available_cpus() // workers)


def session_threads(settings: Settings) -> int:
    """The intra-op thread count of every session this service worker creates (``ARCHCAST_ORT_THREADS``)."""
    return intra_op_threads(settings.ort_threads, settings.workers)


def small_batch_session(source: str | bytes, provider: str, threads: int, small_batch: int) -> ort.InferenceSession | None:
    """A single-threaded CPU session of ``source`` for small batches, or None where it would not differ (CUDA, one
    intra-op thread, ``small_batch`` 0)."""
    if provider != CPU or small_batch <= 0 or intra_op_threads(threads) <= 1:
        return None
    return ort.InferenceSession(source, _session_options(1, 3), providers=[CPU])


def _session_options(threads: int, severity: int) -> ort.SessionOptions:
    """Session options; a session of several intra-op threads stops their spinning as soon as its run returns.

    Left spinning (onnxruntime's default), they hold the cores after the run, so a run of another session right after
    it (the second predictor of a request whose targets span two, the next request of another space) is slowed down:
    an ``nb201-v1`` run followed by an ``nb201-help-v1`` run on 64 NB201 cells took 28.3 ms left spinning, 14.9 ms
    stopped (``benchmarks/results/target_split.md``).
    """
    options = ort.SessionOptions()
    options.log_severity_level = severity
    options.intra_op_num_threads = intra_op_threads(threads)
    if options.intra_op_num_threads > 1:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def _create_session(
    path: Path, providers: str, threads: int, cuda_works: bool | None
) -> tuple[ort.InferenceSession, bool | None]:
    """A session on CUDA when wanted and working, else on CPU; also returns what was learnt about CUDA."""
    if not path.exists():
        raise FileNotFoundError(f"ONNX file {path} not found")
    ort.set_default_logger_severity(3)
    if providers != "cpu" and cuda_works is not False:
        if CUDA in ort.get_available_providers():
            ort.set_default_logger_severity(4)  # a failing CUDA probe logs errors; it is expected without a GPU
            try:
                session = ort.InferenceSession(str(path), _session_options(threads, 4), providers=[(CUDA, CUDA_OPTIONS), CPU])
            except Exception as exc:  # noqa: BLE001
                log.info("CUDA session failed (%s); using CPU", exc)
                session = None
            finally:
                ort.set_default_logger_severity(3)
            if session is not None and session.get_providers()[0] == CUDA:
                return session, True
        if providers == "cuda":
            raise RuntimeError("providers='cuda' but onnxruntime could not create a working CUDA session")
        cuda_works = False
    session = ort.InferenceSession(str(path), _session_options(threads, 3), providers=[CPU])
    return session, cuda_works


def _check_card(card: ModelCard) -> None:
    unknown = [op for op in card.ops if op not in OP_CODES]
    if unknown:
        raise ValueError(f"card lists ops outside the vocabulary: {unknown}")
    if not card.targets:
        raise ValueError("card has no targets")
    if not card.spaces:
        raise ValueError("card has no spaces")


def _check_contract(card: ModelCard, session: ort.InferenceSession) -> None:
    """The ONNX graph must take tokens/mask/depth and return prediction (B, T) with T = number of card targets."""
    inputs = {i.name for i in session.get_inputs()}
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise ValueError(f"ONNX graph lacks inputs {missing}; it has {sorted(inputs)}")
    outputs = {o.name: o for o in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise ValueError(f"ONNX graph lacks output {OUTPUT_NAME!r}; it has {sorted(outputs)}")
    shape = outputs[OUTPUT_NAME].shape
    if len(shape) != 2:
        raise ValueError(f"output {OUTPUT_NAME!r} must be 2-D (B, T), got shape {shape}")
    if isinstance(shape[1], int) and shape[1] != len(card.targets):
        raise ValueError(f"output has {shape[1]} columns but the card lists {len(card.targets)} targets")
    # a warm-up run on the smallest graph (input -> output) also checks the dynamic output shape
    batch = tokenize_graphs([ArchGraph(nodes=(Node(INPUT), Node(OUTPUT)), edges=((0, 1),))])
    (prediction,) = session.run([OUTPUT_NAME], {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth})
    if prediction.shape != (1, len(card.targets)):
        raise ValueError(f"warm-up prediction has shape {prediction.shape}, expected (1, {len(card.targets)})")


def predict_local(
    architecture: dict[str, Any], targets: list[str] | None = None, predictor: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """In-process prediction of one architecture (the ``archcast predict`` command): the HTTP response body, no server.

    Bad input raises ``ServiceError`` / ``ArchitectureError`` with the same codes and messages as the HTTP API.
    Many architectures at once: ``service.local.predict_local_many``.
    """
    from service.local import predict_local_many

    return predict_local_many([architecture], targets, predictor, settings)
