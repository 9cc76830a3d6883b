"""Real-world check of the shipped whole-network predictor, and upload-to-answer time through HTTP.

    python -m benchmarks.onnx_realworld --out benchmarks/results/onnx_realworld

Networks: the canonical members of every zoo family (ResNet-18/50, ResNeXt-50, MobileNetV2/V3, EfficientNet-B0,
MnasNet, SqueezeNet 1.1, GoogLeNet, DenseNet-121, RegNet, ShuffleNetV2, ViT-Ti/S, ConvNeXt-T, Swin-T) at 224:
the published configurations, not samples (the largest ones are above the dataset's 4 GMAC cap, so they lie
outside its range). Each is measured in ``--passes`` passes over the whole set, each pass in its own shuffled order
(minimum kept; a network's passes lie minutes apart, the dataset's only a chunk apart), and predicted by the shipped
predictor; the FLOPs log-log and kernel-sum baselines are fitted on the whole dataset for comparison. Then a ~100 MB ONNX
(ResNet-50 with weights) and a weight-free copy are POSTed to a live server: median of 5 upload-to-answer times.

Measured latencies only compare with the dataset's device (CPU model, onnxruntime version in its meta.json). On
another machine the benchmark refuses to measure; ``--measured-from REPORT.json`` takes each network's measured
latency from an earlier report made on the dataset's device and re-does only the predictions and upload timing:

    python -m benchmarks.onnx_realworld --measured-from benchmarks/results/onnx_realworld.json

``--reference N`` also measures N networks of the dataset's reference part (labels as measured) in the same passes:
the median of their ``now / label`` is this sitting's machine speed against the labels the predictor learned (a
shared host moves 5-10 % over days), and the report adds every method's error against the measurements brought to
the labels' speed (``speed_section``; ``benchmarks/onnx_out_of_scope.py`` takes the same option).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.machine import describe_machine
from model.card import PREDICTOR_DIR
from model.onnx_graph import ParseOptions, parse_onnx
from model.onnx_weights import weight_free
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.routers.predict_onnx import choose_network_predictor
from training.latency_baselines import fit_flops_loglog, fit_kernel_sum, kind_sums
from training.latency_data import load_latency_dataset
from training.latency_metrics import latency_metrics
from training.netgen.export import build_network, export_onnx_bytes, export_spec
from training.netgen.files import META, dataset_parts, latest_records
from training.netgen.measure import device_mismatch, measure_pass
from training.netgen.registry import FAMILY_MODULES

SKIP = {"vgg11_bn", "vgg16_bn"}  # 0.5 GB of weights each; measured VGG variants are in the dataset


def canonical_networks() -> list[tuple[str, str, dict]]:
    out = []
    for fam in FAMILY_MODULES:
        module = __import__(f"training.netgen.zoo.{fam}", fromlist=["canonical"])
        out += [(fam, spec["name"], spec) for spec in module.canonical() if spec["name"] not in SKIP]
    return out


def upload_times(url: str, data: bytes, repeats: int = 5) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(repeats):
            started = time.perf_counter()
            # a distinct resolution each time defeats the cache, so every upload is parsed and predicted
            response = client.post(f"/v1/predict/onnx?resolution={224 + 32 * (i % 2)}&batch={1 + i}", content=data)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
    return statistics.median(times)


def measure_in_passes(networks: dict[str, bytes], passes: int, seed: int) -> dict[str, list[float]]:
    """Each pass measures every network once, in its own shuffled order; a network's passes lie minutes apart.

    A shared machine has slow spells that last tens of seconds (one re-measurement on 2026-12-01 ran 60 % slow for
    50 s): passes back to back would fall into the same spell, passes over the whole set mostly do not.
    """
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name in networks}
    for index in range(passes):
        order = list(networks)
        rng.shuffle(order)
        for name in order:
            out[name].append(measure_pass(networks[name]).min_ms)
        print(f"pass {index + 1}/{passes} done", flush=True)
    return out


REFERENCE_PREFIX = "reference:"


def reference_networks(data: Path, count: int, seed: int = 0) -> dict[str, tuple[dict, bytes]]:
    """``count`` random networks of the first part of ``data`` (the part whose speed every label is brought to),
    keyed ``reference:<id>``: (record, ONNX bytes); none (and nothing read) for ``count`` 0."""
    if count <= 0:
        return {}
    records = latest_records(dataset_parts(data)[0][0])
    chosen = random.Random(f"reference:{seed}").sample(sorted(records), min(count, len(records)))
    return {f"{REFERENCE_PREFIX}{i}": (records[i], export_spec(records[i]["family"], records[i]["spec"])) for i in chosen}


def sitting_speed(references: dict[str, tuple[dict, bytes]], passes: dict[str, list[float]]) -> dict:
    """How fast this sitting ran against the labels: per reference network ``log(min over passes / label)``; the
    median's exp is the factor ``now / label`` (below 1: faster now)."""
    logs = np.array([np.log(min(passes[name]) / record["latency_ms"]) for name, (record, _) in references.items()])
    return {
        "n": len(logs),
        "now_over_label": float(np.exp(np.median(logs))),
        "iqr_pct": float(100 * np.subtract(*np.percentile(logs, [75, 25]))),
    }


def measure_with_references(
    networks: dict[str, bytes], data: Path, references: int, passes: int, seed: int
) -> tuple[dict[str, list[float]], dict | None]:
    """``measure_in_passes`` over ``networks`` plus ``references`` networks of ``data`` interleaved with them: the
    passes of ``networks`` and the sitting's speed (``sitting_speed``; None without references)."""
    chosen = reference_networks(data, references)
    measured = measure_in_passes(networks | {key: onnx_bytes for key, (_, onnx_bytes) in chosen.items()}, passes, seed)
    return {name: measured[name] for name in networks}, sitting_speed(chosen, measured) if chosen else None


def label_speed_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Every method's metrics against the measurements brought to the labels' speed (``at_label_speed_ms``)."""
    aligned = np.array([r["at_label_speed_ms"] for r in rows])
    methods = ("archcast", "kernel_sum", "flops_loglog")
    return {m: latency_metrics(np.array([r[f"{m}_ms"] for r in rows]), aligned) for m in methods}


def speed_section(report: dict) -> list[str]:
    """The sitting's speed and every method against the measurements brought to the labels' speed (reports measured
    with ``--reference``; nothing otherwise)."""
    speed = report.get("sitting_speed")
    if not speed:
        return []
    lines = [
        "",
        f"The sitting's speed: {speed['n']} networks of the dataset's reference part, measured in the same passes, ran "
        f"**{100 * (speed['now_over_label'] - 1):+.1f} %** against their labels (median; interquartile range of the "
        f"log ratios {speed['iqr_pct']:.1f} %). Brought to the labels' speed (measured / {speed['now_over_label']:.3f}):",
        "",
        "| network | measured ms | at the labels' speed ms | ArchCast ms | error % |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['network']} | {r['measured_ms']:.2f} | {r['at_label_speed_ms']:.2f} | {r['archcast_ms']:.2f} | "
        f"{100 * (r['archcast_ms'] / r['at_label_speed_ms'] - 1):+.1f} |"
        for r in report["networks"]
    ]
    return lines + summary_table(report["summary_at_label_speed"], "MAPE % at the labels' speed")


def summary_table(summary: dict, mape: str) -> list[str]:
    """MAPE / Acc(10 %) / Spearman per method, headed by ``mape``."""
    rows = ["", f"| method | {mape} | Acc(10 %) % | Spearman |", "|---|---|---|---|"]
    return rows + [
        f"| {m} | {s['mape']:.1f} | {s['acc10']:.0f} | {s.get('spearman', float('nan')):.3f} |" for m, s in summary.items()
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_realworld"))
    parser.add_argument(
        "--measured-from", type=Path, default=None, help="reuse measured latencies from this earlier report (JSON)"
    )
    parser.add_argument(
        "--passes", type=int, default=3, help="passes over all networks, each in its own shuffled order (minimum kept)"
    )
    parser.add_argument("--seed", type=int, default=0, help="draws the pass orders")
    parser.add_argument(
        "--reference", type=int, default=0, metavar="N",
        help="also measure N dataset networks in the same passes: the sitting's speed against the labels",
    )  # fmt: skip
    parser.add_argument(
        "--predictor", default=None, help="shipped network predictor to check (default: the one of the dataset's device)"
    )
    args = parser.parse_args(argv)

    earlier = json.loads(args.measured_from.read_text()) if args.measured_from else None
    mismatch = device_mismatch(json.loads((args.data / META).read_text()))
    if mismatch and earlier is None:
        raise SystemExit(
            f"cannot measure here: {mismatch}; pass --measured-from an earlier report made on the dataset's device"
        )
    measured_from = {r["network"]: r["measured_ms"] for r in earlier["networks"]} if earlier else {}

    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    device = json.loads((args.data / META).read_text())["device"]
    # the shipped predictor of the dataset's device, or the one named (e.g. another device's, on a device none serves yet)
    predictor = choose_network_predictor(registry, args.predictor, None if args.predictor else device)
    data = load_latency_dataset(args.data)
    flops_fit = fit_flops_loglog(np.array([g.totals()["flops"] for g in data.graphs]), data.latency_ms)
    kernel_fit = fit_kernel_sum(np.stack([kind_sums(g) for g in data.graphs]), data.latency_ms)

    networks = [(fam, name, export_onnx_bytes(build_network(fam, spec), 224)) for fam, name, spec in canonical_networks()]
    passes: dict[str, list[float]] = {}
    speed = earlier.get("sitting_speed") if earlier else None
    if earlier is None:
        to_measure = {name: onnx_bytes for _, name, onnx_bytes in networks}
        passes, speed = measure_with_references(to_measure, args.data, args.reference, args.passes, args.seed)
    rows = []
    for fam, name, onnx_bytes in networks:
        if earlier is not None:
            if name not in measured_from:
                raise SystemExit(f"{args.measured_from} has no measurement of {name}")
            measured = measured_from[name]
        else:
            measured = min(passes[name])
        body = predict_onnx_bytes(predictor, onnx_bytes, ParseOptions())
        graph = parse_onnx(onnx_bytes)
        rows.append(
            {
                "network": name,
                "family": fam,
                "gmacs": graph.totals()["macs"] / 1e9,
                "measured_ms": measured,
                **({"passes_ms": passes[name]} if passes else {}),
                **({"at_label_speed_ms": measured / speed["now_over_label"]} if speed else {}),
                "archcast_ms": body["latency_ms"]["value"],
                "archcast_std_ms": body["latency_ms"]["std"],
                "flops_loglog_ms": float(flops_fit(np.array([graph.totals()["flops"]]))[0]),
                "kernel_sum_ms": float(kernel_fit(kind_sums(graph)[None])[0]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    true = np.array([r["measured_ms"] for r in rows])
    summary = {
        m: latency_metrics(np.array([r[f"{m}_ms"] for r in rows]), true) for m in ("archcast", "kernel_sum", "flops_loglog")
    }

    heavy = export_onnx_bytes(build_network("resnet", next(s for f, n, s in canonical_networks() if n == "resnet50")), 224)
    light = weight_free(heavy)
    timing = serve_and_time(heavy, light)
    report = {
        "command": "python -m benchmarks.onnx_realworld " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "measured_on": earlier.get("measured_on", earlier["machine"]) if earlier else describe_machine(),
        "predictor": f"{predictor.name} {predictor.card.version}",
        "device": device,
        "networks": rows,
        "summary": summary,
        "upload": {"resnet50_bytes": len(heavy), "weight_free_bytes": len(light), **timing},
    }
    if speed:
        report |= {"sitting_speed": speed, "summary_at_label_speed": label_speed_summary(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def serve_and_time(heavy: bytes, light: bytes) -> dict[str, float]:
    import socket
    import threading

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(providers="cpu")), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        return {
            "resnet50_upload_to_answer_s": upload_times(url, heavy),
            "weight_free_upload_to_answer_s": upload_times(url, light),
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def markdown(report: dict) -> str:
    lines = [
        f"# Real-world networks (not in the dataset) on {report.get('device', 'cpu-ort-1t')}",
        "",
        f"Machine: {report['machine']}. Predictor: {report['predictor']}. Command: `{report['command']}`.",
        "",
        f"Latencies measured on: {report.get('measured_on', report['machine'])} (the dataset's device; "
        "predictions and upload times on the machine above).",
        "",
        "| network | GMACs | measured ms | ArchCast ms (std) | error % | kernel-sum ms | FLOPs fit ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["networks"]:
        error = 100 * (r["archcast_ms"] - r["measured_ms"]) / r["measured_ms"]
        lines.append(
            f"| {r['network']} | {r['gmacs']:.2f} | {r['measured_ms']:.1f} | "
            f"{r['archcast_ms']:.1f} ({r['archcast_std_ms']:.1f}) | "
            f"{error:+.1f} | {r['kernel_sum_ms']:.1f} | {r['flops_loglog_ms']:.1f} |"
        )
    spreads = [100 * (max(r["passes_ms"]) / min(r["passes_ms"]) - 1) for r in report["networks"] if "passes_ms" in r]
    if spreads:
        lines += [
            "",
            f"Measured: minimum of {len(report['networks'][0]['passes_ms'])} passes over all "
            f"{len(report['networks'])} networks, each pass in its own shuffled order. Slowest over fastest pass of a "
            f"network: median +{np.median(spreads):.1f} %, max +{max(spreads):.1f} %.",
        ]
    lines += summary_table(report["summary"], "MAPE %") + speed_section(report)
    u = report["upload"]
    lines += [
        "",
        "Upload to answer through HTTP (median of 5, cache defeated): "
        f"ResNet-50 with weights ({u['resnet50_bytes'] / 1e6:.0f} MB) "
        f"**{u['resnet50_upload_to_answer_s']:.2f} s**; weight-free copy ({u['weight_free_bytes'] / 1e3:.0f} kB) "
        f"**{u['weight_free_upload_to_answer_s']:.3f} s**.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
