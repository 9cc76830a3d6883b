"""Dense-prediction families (U-Net, FPN, DeepLab) and dataset extensions: reproducible specs, exports that run with
the expected output shapes, MACs that agree between torch and the ONNX cost model, and an extension that leaves the
networks before it untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from family_samples import distinct, reproducible_samples, small_sample

from model.onnx_graph import ParseOptions, parse_onnx
from training.netgen.dense import SEGMENTATION_CLASSES
from training.netgen.export import build_network, export_onnx_bytes, export_with_input
from training.netgen.files import read_jsonl
from training.netgen.generate import count_macs, family_of, generate, network_spec
from training.netgen.measure import MeasureSettings
from training.netgen.registry import DENSE_FAMILY_MODULES, family

FAST = MeasureSettings(warmup=1, min_runs=2, max_runs=3, min_time_s=0.0)


@pytest.mark.parametrize("name", DENSE_FAMILY_MODULES)
def test_dense_sampling_is_reproducible_and_varied(name: str) -> None:
    specs = reproducible_samples(name)
    assert distinct(specs) >= 18
    assert all(96 <= s["resolution"] <= 256 for s in specs)


def _small(name: str) -> dict:
    return small_sample(name, 0.5e9, tries=100)


@pytest.mark.parametrize("name", DENSE_FAMILY_MODULES)
def test_a_dense_sample_exports_runs_and_costs_the_same_as_in_torch(name: str) -> None:
    spec = _small(name)
    module = build_network(name, spec)
    resolution = spec["resolution"]
    data = export_onnx_bytes(module, resolution)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": np.zeros((1, 3, resolution, resolution), np.float32)})
    if name == "yolo":  # box distribution (64) + classes per anchor point of the three levels (strides 8, 16, 32)
        points = sum((resolution // stride) ** 2 for stride in (8, 16, 32))
        assert out.shape == (1, 64 + spec["num_classes"], points)
    elif spec.get("head") == "detect":
        assert out.shape[:2] == (1, spec["anchors"] * (spec["num_classes"] + 5))
    else:
        assert out.shape == (1, spec["num_classes"], resolution, resolution)
        assert spec["num_classes"] in SEGMENTATION_CLASSES
    graph = parse_onnx(data, ParseOptions(resolution=resolution))
    assert graph.unknown_shapes == 0
    assert graph.totals()["macs"] == pytest.approx(count_macs(module, resolution), rel=1e-9)


@pytest.mark.parametrize(
    ("depth", "width", "max_channels", "gflops", "mparams"),
    [(0.33, 0.25, 1024, 8.7, 3.2), (0.33, 0.5, 1024, 28.6, 11.2), (0.67, 0.75, 768, 78.9, 25.9)],
)
def test_yolo_scales_match_the_published_yolov8_n_s_m(
    depth: float, width: float, max_channels: int, gflops: float, mparams: float
) -> None:
    """Ultralytics' YOLOv8 n / s / m at 640 x 640, 80 classes: GFLOPs (2 x MACs) and parameters from its docs."""
    spec = {"resolution": 640, "num_classes": 80, "width": width, "max_channels": max_channels, "act": "silu",
            "depths": [max(1, round(d * depth)) for d in (3, 6, 6, 3)], "neck_depth": max(1, round(3 * depth))}  # fmt: skip
    module = family("yolo").build(spec).eval()
    assert 2 * count_macs(module, 640) / 1e9 == pytest.approx(gflops, abs=0.05)
    assert sum(p.numel() for p in module.parameters()) / 1e6 == pytest.approx(mparams, abs=0.05)


def test_conv_transpose_macs_agree_between_torch_and_the_onnx_cost_model() -> None:
    spec = {**_small("unet"), "up": "transpose"}
    module = build_network("unet", spec)
    graph = parse_onnx(export_onnx_bytes(module, spec["resolution"]))
    assert any(n.op_type == "ConvTranspose" for n in graph.nodes)
    assert graph.totals()["macs"] == pytest.approx(count_macs(module, spec["resolution"]), rel=1e-9)


@pytest.mark.parametrize(("mode", "per_element"), [("nearest", 1.0), ("bilinear", 8.0)])
def test_resize_costs_per_output_element_by_mode(mode: str, per_element: float) -> None:
    module = torch.nn.Upsample(scale_factor=2, mode=mode)
    graph = parse_onnx(export_with_input(module, torch.zeros(1, 4, 8, 8)))
    (resize,) = [n for n in graph.nodes if n.op_type == "Resize"]
    assert resize.cost.flops == 4 * 16 * 16 * per_element


def test_an_extension_assigns_its_own_families_from_its_first_id() -> None:
    extensions = [{"from_id": 4, "families": ["unet", "fpn"]}]
    names = [family_of(i, ("resnet", "vgg"), extensions) for i in range(8)]
    assert names == ["resnet", "vgg", "resnet", "vgg", "unet", "fpn", "unet", "fpn"]
    assert network_spec(0, 2, ("resnet", "vgg"), extensions) == network_spec(0, 2, ("resnet", "vgg"))


def test_generate_extends_a_dataset_and_keeps_the_earlier_networks(tmp_path: Path) -> None:
    base = ("squeezenet", "shufflenet")
    generate(tmp_path, 2, seed=0, chunk=2, settings=FAST, families=base, progress=False)
    before = {r["id"]: r["spec"] for r in read_jsonl(tmp_path / "measurements.jsonl")}
    with pytest.raises(SystemExit, match="after every measured network"):
        too_early = {"from_id": 1, "families": ["unet"]}
        generate(tmp_path, 3, seed=0, settings=FAST, families=base, progress=False, extension=too_early)
    extension = {"from_id": 2, "families": ["unet"]}
    generate(tmp_path, 3, seed=0, chunk=2, settings=FAST, families=base, progress=False, extension=extension)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "measurements.jsonl")}
    assert {i: records[i]["spec"] for i in before} == before
    assert records[2]["family"] == "unet" and records[2]["latency_ms"] > 0
    assert json.loads((tmp_path / "meta.json").read_text())["extensions"] == [extension]
    generate(tmp_path, 3, seed=0, chunk=2, settings=FAST, families=base, progress=False)  # the meta keeps the extension
    assert json.loads((tmp_path / "meta.json").read_text())["extensions"] == [extension]


def test_an_extension_is_refused_when_the_machine_no_longer_measures_like_the_dataset(tmp_path: Path) -> None:
    """The drift check measures earlier networks again: labels 10x faster than this machine runs them block the
    extension before anything is added; with a limit above that drift the same extension goes ahead."""
    base = ("squeezenet", "shufflenet")
    generate(tmp_path, 2, seed=0, chunk=2, settings=FAST, families=base, progress=False)
    records = list(read_jsonl(tmp_path / "measurements.jsonl"))
    for record in records:
        record["latency_ms"] /= 10  # as if measured on a much faster day
    (tmp_path / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    extension = {"from_id": 2, "families": ["unet"]}
    with pytest.raises(SystemExit, match="against the dataset's labels"):
        generate(tmp_path, 3, seed=0, chunk=2, settings=FAST, families=base, progress=False, extension=extension,
                 drift_check=2)  # fmt: skip
    assert len(list(read_jsonl(tmp_path / "measurements.jsonl"))) == 2
    assert "extensions" not in json.loads((tmp_path / "meta.json").read_text())
    assert len(list(read_jsonl(tmp_path / "drift_2.jsonl"))) == 2
    generate(tmp_path, 3, seed=0, chunk=2, settings=FAST, families=base, progress=False, extension=extension,
             drift_check=2, max_drift_pct=10_000.0)  # fmt: skip
    assert [r["family"] for r in read_jsonl(tmp_path / "measurements.jsonl")] == ["squeezenet", "shufflenet", "unet"]
