"""Whole-network (ONNX upload) prediction: parse -> tokenize -> the network predictor's session -> latency + std.

A network predictor card has ``kind="network"``; its ONNX graph takes ``tokens``/``mask``/``features`` from
``model.network_tokenizer`` and returns ``prediction`` (B, 2) = latency in ms and its std (ensemble spread).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from model.card import ModelCard
from model.network_domain import GraphFacts, domain_warnings, unseen_op_types
from model.network_tokenizer import (
    GRAPH_FEATURE_DIM,
    TOKEN_WIDTHS,
    NetworkTokens,
    tokenize_networks,
    tokens_for_version,
)
from model.onnx_graph import NetworkGraph, ParseOptions, parse_onnx
from service.breakdown import breakdown
from service.errors import ServiceError

log = logging.getLogger("archcast.service")
NETWORK_INPUTS = ("tokens", "mask", "features")


@dataclass
class NetworkPredictor:
    card: ModelCard
    session: ort.InferenceSession
    provider: str
    onnx_path: Path | None = None  # where the graph was loaded from (a calibration builds on it)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    breakdown_session: Any = field(default=None, repr=False)  # service.breakdown's session, built on first use

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def device(self) -> str:
        return str(self.card.device.get("device", self.card.name))

    @property
    def dtype(self) -> str | None:
        """Element type of the networks this predictor learnt (its device's ``dtype``), None when the card says none."""
        dtype = self.card.device.get("dtype")
        return str(dtype) if dtype else None

    def feeds(self, batch: NetworkTokens) -> dict[str, np.ndarray]:
        """The session's inputs for a tokenized batch: the token columns this predictor's tokenizer version knows."""
        tokens = tokens_for_version(batch.tokens, self.card.tokenizer)
        return {"tokens": tokens, "mask": batch.mask, "features": batch.features}

    def graph_feeds(self, graph: NetworkGraph) -> dict[str, np.ndarray]:
        """The session's inputs for one parsed network."""
        return self.feeds(tokenize_networks([graph], max_nodes=max(graph.n, 1), version=self.card.tokenizer))

    def run(self, graph: NetworkGraph, feeds: dict[str, np.ndarray] | None = None) -> tuple[float, float]:
        """Latency value and std in ms; ``feeds`` are ``graph_feeds(graph)`` when the caller has them already."""
        feeds = feeds if feeds is not None else self.graph_feeds(graph)
        try:
            (prediction,) = self.session.run(["prediction"], feeds)
        except Exception as exc:  # onnxruntime failure: a server fault, reported as 503
            log.error("network predictor %s failed on a %d-node graph: %s", self.name, graph.n, exc)
            raise ServiceError(503, "inference_failed", f"predictor {self.name!r} failed to run; retry later") from exc
        return float(prediction[0, 0]), float(prediction[0, 1])


def check_network_contract(card: ModelCard, session: ort.InferenceSession) -> None:
    inputs = {i.name for i in session.get_inputs()}
    missing = [name for name in NETWORK_INPUTS if name not in inputs]
    if missing:
        raise ValueError(f"network predictor ONNX lacks inputs {missing}; it has {sorted(inputs)}")
    if card.tokenizer not in TOKEN_WIDTHS:
        raise ValueError(
            f"network predictor was trained on tokenizer version {card.tokenizer or 'unrecorded (before 3)'}, this "
            f"service serves versions {', '.join(TOKEN_WIDTHS)}: it was exported by another tokenizer version; "
            "re-export it with this one"
        )
    widths = {i.name: i.shape[-1] for i in session.get_inputs()}
    for name, width in (("tokens", TOKEN_WIDTHS[card.tokenizer]), ("features", GRAPH_FEATURE_DIM)):
        if isinstance(widths[name], int) and widths[name] != width:
            raise ValueError(
                f"network predictor ONNX takes {name} of width {widths[name]}, this tokenizer makes {width}: "
                "it was exported by another tokenizer version; re-export it with this one"
            )
    if "prediction" not in {o.name for o in session.get_outputs()}:
        raise ValueError("network predictor ONNX lacks output 'prediction'")
    if not card.targets:
        raise ValueError("card has no targets")


def model_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def predict_onnx_bytes(
    predictor: NetworkPredictor, data: bytes, options: ParseOptions, with_breakdown: bool = False
) -> dict[str, Any]:
    """The response body for one uploaded ONNX model (runs in a worker thread: parsing is CPU work); with
    ``with_breakdown`` also where the predicted time goes (``service.breakdown``)."""
    started = time.perf_counter()
    graph = parse_onnx(data, options)
    parsed = time.perf_counter()
    feeds = predictor.graph_feeds(graph)
    value, std = predictor.run(graph, feeds)
    done = time.perf_counter()
    extra = {"breakdown": breakdown(predictor, graph, value, feeds)} if with_breakdown else {}
    totals = graph.totals()
    unseen = unseen_op_types(graph, predictor.card.domain)
    facts = GraphFacts.of(graph)
    return {
        "predictor": predictor.name,
        "version": predictor.card.version,
        "device": predictor.device,
        "latency_ms": {"value": value, "std": std},
        "cost": {
            "flops": totals["flops"],
            "macs": totals["macs"],
            "params": totals["params"],
            "memory_bytes": totals["memory_bytes"],
            "nodes": int(totals["nodes"]),
        },
        "input_shapes": {name: list(shape) for name, shape in graph.input_shapes.items()},
        "unseen_op_types": unseen,
        "weight_types": list(graph.weight_types),
        **facts.to_body(),
        "warnings": domain_warnings(
            unseen, totals["macs"], graph.n, predictor.card.domain, graph.weight_types, predictor.dtype, facts
        ),
        "timing_ms": {"parse": 1e3 * (parsed - started), "predict": 1e3 * (done - parsed)},
        "upload_bytes": len(data),
        "model_sha256": model_digest(data),
        "batch": options.batch,
        "resolution": options.resolution,
        "sequence_length": options.sequence_length,
        "past_length": options.past_length,
        **extra,
    }
