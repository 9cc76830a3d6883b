"""Build a sampled network and export it to ONNX (opset 17, batch 1, float32 or int64 token ids in, BN folded)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from training.netgen.registry import family

OPSET = 17


def build_network(family_name: str, spec: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return family(family_name).build(spec).eval()


def export_onnx_bytes(module: torch.nn.Module, resolution: int, batch: int = 1) -> bytes:
    return export_with_input(module, torch.randn(batch, 3, resolution, resolution))


def export_with_input(module: torch.nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> bytes:
    """ONNX bytes of ``module`` traced on ``example`` (one tensor, or a tuple of the forward's inputs; opset 17,
    constants folded: BN folds into the convs)."""
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            example if isinstance(example, tuple) else (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            do_constant_folding=True,
        )
    return buffer.getvalue()


def export_spec(family_name: str, spec: dict[str, Any], path: Path | None = None) -> bytes:
    data = export_with_input(build_network(family_name, spec), family(family_name).example_input(spec))
    if path is not None:
        path.write_bytes(data)
    return data
