"""The same published networks as users also ship them: onnxruntime-optimized, float16, int8-quantized.

    python -m benchmarks.onnx_variants --out benchmarks/results/onnx_variants
    python -m benchmarks.onnx_variants --measured-from benchmarks/results/onnx_variants.json --out ...   # predict only

A CI pipeline does not always upload the float32 export the dataset holds. Each network of ``--networks`` (canonical
zoo members at 224, as in ``benchmarks/onnx_realworld.py``) is written nine ways, with torch's exporters and
onnxruntime's own tools:

- ``float32``: the export itself (``torch.onnx.export``, TorchScript exporter, opset 17, constants folded);
- ``torch_unfolded``: the same exporter with ``do_constant_folding=False`` (BatchNormalization nodes after the
  convolutions, shape arithmetic left in the graph), as many published ONNX files were written;
- ``torch_opset13``: the TorchScript exporter at opset 13 (no LayerNormalization op: layer norms as nine nodes);
- ``torch_dynamo``: torch's default exporter since 2.9 (``dynamo=True``, opset 20: one-node ``Gelu``, ``ReduceMean``
  pooling);
- ``ort_optimized``: the model onnxruntime saves after its extended graph optimizations (``FusedConv``,
  ``FusedMatMul``, ``Gelu``, ``SkipLayerNormalization``: com.microsoft ops), the ``model.opt.onnx`` a pipeline caches;
- ``float16``: ``onnxruntime.transformers.float16.convert_float_to_float16`` (inputs and outputs kept float32);
- ``int8_qdq`` / ``int8_qoperator``: static quantization (``quantize_static`` after ``quant_pre_process``, 8 seeded
  random calibration inputs) in QDQ and in QOperator format (``QLinearConv``, ``QLinearMatMul``, ...);
- ``int8_dynamic``: ``quantize_dynamic`` with int8 weights (``ConvInteger``, ``MatMulInteger``).

Each variant is measured on this machine like the dataset (1 thread, batch 1; ``--passes`` passes, in each a network's
variants back to back in a shuffled order) and predicted by the shipped whole-network predictor. The predictor's
device is another CPU unless this machine is it, so the figure that carries over is the ratio: each variant's latency
over its float32 export's measured in the same pass (median over passes), against the predicted ratio. The answer's
parsed cost (MACs, parameters) and warnings are recorded: for a variant the predictor never trained on, the warnings
are part of the answer.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

from benchmarks.machine import describe_machine
from benchmarks.onnx_realworld import canonical_networks
from model.card import PREDICTOR_DIR
from model.errors import ArchitectureError
from model.onnx_graph import ParseOptions
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.routers.predict_onnx import choose_network_predictor
from training.netgen.export import build_network, export_onnx_bytes
from training.netgen.measure import measure_pass

NETWORKS = ("resnet18", "mobilenet_v2", "efficientnet_b0", "squeezenet1_1", "vit_tiny_16", "convnext_tiny")
VARIANTS = (
    "float32", "torch_unfolded", "torch_opset13", "torch_dynamo", "ort_optimized", "float16", "int8_qdq", "int8_qoperator",
    "int8_dynamic",
)
EXPORTERS: dict[str, dict] = {
    "torch_unfolded": {"dynamo": False, "opset_version": 17, "do_constant_folding": False},
    "torch_opset13": {"dynamo": False, "opset_version": 13},
    "torch_dynamo": {"dynamo": True},
}
CALIBRATION_INPUTS = 8


def _ort_optimized(path: Path, work: Path) -> bytes:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(work / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return (work / "optimized.onnx").read_bytes()


def _float16(path: Path, work: Path) -> bytes:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load(str(path)), keep_io_types=True).SerializeToString()


def _static(quant_format: str) -> Callable[[Path, Path], bytes]:
    def convert(path: Path, work: Path) -> bytes:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        model = onnx.load(str(path))
        tensor = model.graph.input[0]
        shape = [d.dim_value or 1 for d in tensor.type.tensor_type.shape.dim]
        rng = np.random.default_rng(0)

        class RandomInputs(CalibrationDataReader):
            def __init__(self) -> None:
                self.left = CALIBRATION_INPUTS

            def get_next(self) -> dict[str, np.ndarray] | None:
                self.left -= 1
                return {tensor.name: rng.random(shape, dtype=np.float32)} if self.left >= 0 else None

        prepared = work / "prepared.onnx"
        quant_pre_process(str(path), str(prepared))
        out = work / f"{quant_format}.onnx"
        quantize_static(str(prepared), str(out), RandomInputs(), quant_format=getattr(QuantFormat, quant_format))
        return out.read_bytes()

    return convert


def _dynamic(path: Path, work: Path) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = work / "dynamic.onnx"
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out.read_bytes()


CONVERTERS: dict[str, Callable[[Path, Path], bytes]] = {
    "ort_optimized": _ort_optimized,
    "float16": _float16,
    "int8_qdq": _static("QDQ"),
    "int8_qoperator": _static("QOperator"),
    "int8_dynamic": _dynamic,
}


def export_as(module: torch.nn.Module, resolution: int, exporter: str) -> bytes:
    """The network through one of torch's other export paths (``EXPORTERS``)."""
    buffer = io.BytesIO()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(module, (torch.randn(1, 3, resolution, resolution),), buffer, **EXPORTERS[exporter])
    return buffer.getvalue()


def exported(module: torch.nn.Module, resolution: int) -> dict[str, bytes | str]:
    """The network through each of torch's other export paths, or the exporter's error message."""
    out: dict[str, bytes | str] = {}
    for name in EXPORTERS:
        try:
            out[name] = export_as(module, resolution, name)
        except Exception as exc:  # noqa: BLE001 - an exporter's failure is a result to report
            out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return out


def variants_of(float32: bytes, module: torch.nn.Module | None = None, resolution: int = 224) -> dict[str, bytes | str]:
    """Each variant's bytes, or the converter's error message where a tool failed on this network; the exporter
    variants only when ``module`` is given."""
    out: dict[str, bytes | str] = {"float32": float32}
    if module is not None:
        out.update(exported(module, resolution))
    for name, convert in CONVERTERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "float32.onnx").write_bytes(float32)
            try:
                out[name] = convert(work / "float32.onnx", work)
            except Exception as exc:  # noqa: BLE001 - a converter's failure is a result to report
                out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return out


def measure_side_by_side(
    models: dict[tuple[str, str], bytes | str], passes: int, seed: int
) -> dict[tuple[str, str], list[float]]:
    """``passes`` passes; in each, the networks in a shuffled order and each network's variants back to back (also
    shuffled), so that a variant and its float32 export share the machine's state of the moment (this CPU has slow
    spells of tens of seconds). Minimum time of each model in each pass."""
    rng = random.Random(seed)
    networks = sorted({network for network, _ in models})
    out: dict[tuple[str, str], list[float]] = {key: [] for key, data in models.items() if isinstance(data, bytes)}
    for index in range(passes):
        rng.shuffle(networks)
        for network in networks:
            keys = [key for key in out if key[0] == network]
            rng.shuffle(keys)
            for key in keys:
                out[key].append(measure_pass(models[key]).min_ms)  # type: ignore[arg-type]
        print(f"pass {index + 1}/{passes} done", flush=True)
    return out


def predict(predictor: object, data: bytes) -> dict:
    try:
        body = predict_onnx_bytes(predictor, data, ParseOptions())  # type: ignore[arg-type]
    except ArchitectureError as exc:
        return {"refused": f"{exc.code}: {exc.message}"}
    return {
        "archcast_ms": body["latency_ms"]["value"],
        "archcast_std_ms": body["latency_ms"]["std"],
        "gmacs": body["cost"]["macs"] / 1e9,
        "mparams": body["cost"]["params"] / 1e6,
        "memory_mb": body["cost"]["memory_bytes"] / 1e6,
        "nodes": body["cost"]["nodes"],
        "warnings": body["warnings"],
    }


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per variant: how far the predicted ratio to float32 lands from the measured one (|pred / meas - 1|, %)."""
    out = {}
    for variant in VARIANTS:
        errors = [abs(r["ratio_error"]) for r in rows if r["variant"] == variant and "ratio_error" in r]
        warned = [bool(r.get("warnings")) for r in rows if r["variant"] == variant and "archcast_ms" in r]
        refused = [r for r in rows if r["variant"] == variant and "refused" in r]
        out[variant] = {
            "n": len(errors),
            "median_abs_ratio_error_pct": float(np.median(errors)) if errors else None,
            "max_abs_ratio_error_pct": float(np.max(errors)) if errors else None,
            "warned": int(sum(warned)),
            "refused": len(refused),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_variants"))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictor", default="cpu-ort-1t-v1")
    parser.add_argument("--measured-from", type=Path, default=None, help="reuse the measurements of an earlier report")
    args = parser.parse_args(argv)

    specs = {name: (fam, spec) for fam, name, spec in canonical_networks()}
    unknown = sorted(set(args.networks) - set(specs))
    if unknown:
        raise SystemExit(f"unknown networks {unknown}; choose from {sorted(specs)}")
    models: dict[tuple[str, str], bytes | str] = {}
    for network in args.networks:
        fam, spec = specs[network]
        module = build_network(fam, spec)
        for variant, data in variants_of(export_onnx_bytes(module, 224), module, 224).items():
            models[(network, variant)] = data
        print(f"{network}: variants written", flush=True)

    earlier = json.loads(args.measured_from.read_text()) if args.measured_from else None
    passes: dict[tuple[str, str], list[float]] = {}
    if earlier is not None:
        passes = {(r["network"], r["variant"]): r["passes_ms"] for r in earlier["rows"] if r.get("passes_ms")}
        measured_on = earlier["measured_on"]
    else:
        passes = measure_side_by_side(models, args.passes, args.seed)
        measured_on = describe_machine()

    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    predictor = choose_network_predictor(registry, args.predictor, None)
    rows = []
    for (network, variant), data in models.items():
        row: dict = {"network": network, "variant": variant}
        if isinstance(data, str):
            row["conversion_failed"] = data
        else:
            times = passes.get((network, variant))
            row.update({"bytes": len(data), **predict(predictor, data)})
            if times:
                row.update({"passes_ms": times, "measured_ms": min(times)})
        rows.append(row)
    base = {r["network"]: r for r in rows if r["variant"] == "float32"}
    for row in rows:
        ref = base[row["network"]]
        if row.get("passes_ms") and ref.get("passes_ms") and "archcast_ms" in row and "archcast_ms" in ref:
            # each pass measured a network's variants back to back: the ratio is taken within a pass, then the median
            per_pass = [a / b for a, b in zip(row["passes_ms"], ref["passes_ms"], strict=True)]
            row["measured_ratio"] = float(np.median(per_pass))
            row["measured_ratio_range"] = [min(per_pass), max(per_pass)]
            row["predicted_ratio"] = row["archcast_ms"] / ref["archcast_ms"]
            row["ratio_error"] = 100 * (row["predicted_ratio"] / row["measured_ratio"] - 1)
        print(json.dumps(row), flush=True)

    report = {
        "command": "python -m benchmarks.onnx_variants " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "measured_on": measured_on,
        "predictor": f"{predictor.name} {predictor.card.version}",
        "predictor_cpu": f"{predictor.card.device.get('cpu', '')} ({predictor.card.device.get('cpu_id', '')})",
        "rows": rows,
        "summary": summarise(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def _ratio(row: dict) -> str:
    if "measured_ratio" not in row:
        return "-"
    low, high = row["measured_ratio_range"]
    return f"{row['measured_ratio']:.2f} ({low:.2f}-{high:.2f})"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    lines = [
        "# Published networks as users ship them: optimized, float16, int8",
        "",
        f"Machine (predictions): {report['machine']}. Measured on: {report['measured_on']}. "
        f"Predictor: {report['predictor']}, whose device is {report.get('predictor_cpu') or 'recorded in its card'}. "
        f"Command: `{report['command']}`.",
        "",
        "Ratio = the variant's latency over the same network's float32 export: measured in the same pass (median over "
        "passes, range in brackets), and predicted. "
        "Ratio error = predicted ratio / measured ratio - 1.",
        "",
        "| network | variant | measured ms | ratio | ArchCast ms (std) | predicted ratio | ratio error % | GMACs | "
        "M params | nodes | warnings |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "conversion_failed" in r:
            lines.append(f"| {r['network']} | {r['variant']} | conversion failed: {r['conversion_failed']} |||||||||")
            continue
        if "refused" in r:
            lines.append(
                f"| {r['network']} | {r['variant']} | {_fmt(r.get('measured_ms'), '.2f')} | "
                f"{_fmt(r.get('measured_ratio'), '.2f')} | refused: {r['refused'][:120]} |||||||"
            )
            continue
        warnings = "; ".join(r["warnings"]) if r["warnings"] else "none"
        lines.append(
            f"| {r['network']} | {r['variant']} | {_fmt(r.get('measured_ms'), '.2f')} | {_ratio(r)} | "
            f"{r['archcast_ms']:.2f} ({r['archcast_std_ms']:.2f}) | {_fmt(r.get('predicted_ratio'), '.2f')} | "
            f"{_fmt(r.get('ratio_error'), '+.0f')} | {r['gmacs']:.3f} | {r['mparams']:.2f} | {r['nodes']} | {warnings[:160]} |"
        )
    lines += [
        "",
        "| variant | networks | median abs ratio error % | max % | answers with a warning | refused |",
        "|---|---|---|---|---|---|",
    ]
    for variant, s in report["summary"].items():
        lines.append(
            f"| {variant} | {s['n']} | {_fmt(s['median_abs_ratio_error_pct'], '.1f')} | "
            f"{_fmt(s['max_abs_ratio_error_pct'], '.1f')} | {s['warned']} | {s['refused']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
