"""Export trained whole-network latency members as one ONNX ensemble (latency mean + std) with its model card."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from model.card import ModelCard, TargetCard
from model.network_tokenizer import GRAPH_FEATURE_DIM, NETWORK_TOKEN_DIM, TOKENIZER_VERSION
from training.whole_network import LatencyEnsemble, WholeNetworkTransformer

OPSET = 17


def export_ensemble(members: list[WholeNetworkTransformer], onnx_path: Path, std_scale: float = 1.0) -> None:
    hops = sorted({m.cfg.attention_hops for m in members if m.cfg.attention_hops})
    if hops:  # the service feeds tokens, mask and features only: such a member would read every node instead
        raise ValueError(f"members attend within {hops} graph hops; the service's ONNX interface has no neighbour mask")
    ensemble = LatencyEnsemble(members, std_scale).eval()
    length = 7
    example = (
        torch.randn(2, length, NETWORK_TOKEN_DIM),
        torch.ones(2, length, dtype=torch.bool),
        torch.randn(2, GRAPH_FEATURE_DIM),
    )
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            ensemble,
            example,
            str(onnx_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["tokens", "mask", "features"],
            output_names=["prediction"],
            dynamic_axes={
                "tokens": {0: "batch", 1: "length"},
                "mask": {0: "batch", 1: "length"},
                "features": {0: "batch"},
                "prediction": {0: "batch"},
            },
        )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = ensemble(*example).numpy()
    (got,) = session.run(None, {"tokens": example[0].numpy(), "mask": example[1].numpy(), "features": example[2].numpy()})
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise RuntimeError(f"ONNX export differs from torch: max abs diff {np.abs(got - expected).max()}")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _hardware(device: dict[str, Any]) -> str:
    if device.get("provider") == "CUDAExecutionProvider":
        return f"{device.get('gpu', 'GPU')}, CUDA execution provider"
    return f"{device.get('cpu', '')}, {device.get('threads', 1)} intra-op thread"


def write_network_card(
    onnx_path: Path,
    name: str,
    version: str,
    device: dict[str, Any],
    metrics: dict[str, float],
    training: dict[str, Any],
    priority: int = 0,
    domain: dict[str, Any] | None = None,
) -> Path:
    """The card of an exported network predictor; ``priority``: the default among network predictors (highest wins)."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    card = ModelCard(
        name=name,
        version=version,
        spaces=["onnx"],
        ops=[],
        targets=[
            TargetCard(
                name=f"latency_{device.get('device', 'device')}_ms",
                unit="ms",
                description=f"batch-1 float32 latency on {device.get('device')} ({_hardware(device)}, onnxruntime "
                f"{device.get('onnxruntime', '')}); std = spread of the ensemble members",
                transform="log",
                mean=0.0,
                std=1.0,
                metrics=metrics,
            )
        ],
        onnx_file=onnx_path.name,
        kind="network",
        device=device,
        git_commit=git_commit(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        training={**training, "onnx_sha256": digest},
        priority=priority,
        tokenizer=TOKENIZER_VERSION,
        domain=domain or {},
    )
    card_path = onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + ".card.json")
    card_path.write_text(card.to_json() + "\n")
    return card_path
