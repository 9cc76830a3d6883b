"""GPU check of the service: CUDA predictions against CPU ones, and throughput at batch 1 / 256 / 4096.

Run where onnxruntime-gpu finds a working CUDA GPU (no torch needed):

    python -m benchmarks.gpu_check [--pack pack.tar.xz] [--seconds 2] [--repeats 3] [--out benchmarks/results]

1. Equality. Two ``archcast serve`` processes, ``ARCHCAST_PROVIDERS=cuda`` (start-up fails rather than fall back to
   CPU) and ``=cpu``, get the same requests: 4096 NB201 cells for every cell predictor of the nb201 space and, with
   ``--pack`` (``training.netgen.pack export``), weight-free ONNX networks for every network predictor. Every returned
   value and std must agree within ``--tolerance`` (1e-4): absolute, in the target's unit, or relative (latencies of
   tens of ms differ by a few 1e-4 ms in float32). The raw onnxruntime outputs of every shipped cell predictor are
   compared as well, with TF32 off (as served) and on.
2. Provider exposure: ``/readyz``'s ``provider`` and the ``archcast_model_info`` metric's provider label.
3. Throughput, NB201 cells per second (cache off, one keep-alive client, batches of ``--batch-sizes``): HTTP on the
   CUDA server and on the CPU server; raw onnxruntime on CUDA (plain run: host inputs and outputs), on CUDA with IO
   binding (inputs already on the GPU, output left there) and on CPU with every core. Median of ``--repeats``.

``--providers-under-test cpu`` runs the same steps with CPU in place of CUDA (a dry run of the script without a GPU).
Writes ``gpu_check.{json,md}`` into ``--out``; ``--render FILE.json`` rewrites the markdown of an earlier run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from benchmarks.machine import describe_machine
from benchmarks.service_throughput import MEMO_NOTE, http_rate, ort_rate, random_cells, serving
from model.canonical import canonicalize
from model.card import find_cards
from model.parsers import parse_nb201
from model.tokenizer import tokenize_graphs
from service.cpus import available_cpus
from service.predictor import CPU, CUDA, CUDA_OPTIONS
from training.netgen.measure import gpu_model

RESULTS = Path(__file__).parent / "results"


def feeds_of(cells: list[str]) -> dict[str, np.ndarray]:
    graphs = [parse_nb201(a) for a in cells]
    batch = tokenize_graphs([g.renumbered(canonicalize(g).order) for g in graphs])
    return {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}


def session(path: Path, provider: str, options: dict[str, str] | None = None) -> ort.InferenceSession:
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = available_cpus()
    settings.log_severity_level = 3
    providers: list[Any] = [(CUDA, options if options is not None else CUDA_OPTIONS), CPU] if provider == "cuda" else [CPU]
    made = ort.InferenceSession(str(path), settings, providers=providers)
    if made.get_providers()[0] != (CUDA if provider == "cuda" else CPU):
        raise RuntimeError(f"{path.name}: no {provider} session here (got {made.get_providers()})")
    return made


def diff_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    absolute = np.abs(a - b)
    return {"n": int(a.size), "max_abs": float(absolute.max()), "max_rel": float((absolute / np.maximum(np.abs(b), 1e-12)).max())}


def raw_equality(cells: list[str], provider: str) -> list[dict[str, Any]]:
    """Each shipped cell predictor: CPU vs ``provider`` session outputs on the same NB201 token batch (TF32 off, on)."""
    feeds = feeds_of(cells)
    rows = []
    for card, path in find_cards():
        if card.kind == "network":
            continue
        (cpu,) = session(path, "cpu").run(["prediction"], feeds)
        row: dict[str, Any] = {"predictor": f"{card.name} {card.version}"}
        for label, options in (("tf32_off", CUDA_OPTIONS), ("tf32_on", {"use_tf32": "1"})):
            if provider != "cuda" and label == "tf32_on":
                continue
            (other,) = session(path, provider, options).run(["prediction"], feeds)
            row[label] = diff_stats(other, cpu)
        rows.append(row)
        diffs = ", ".join(f"{k} max abs {v['max_abs']:.2e}" for k, v in row.items() if k != "predictor")
        print(f"raw {row['predictor']}: {diffs}")
    return rows


def http_values(base: str, path: str, **kwargs: Any) -> list[float]:
    """Every value and std of one response, flattened in a fixed order."""
    response = httpx.post(f"{base}{path}", timeout=300, **kwargs)
    response.raise_for_status()
    body = response.json()
    if "results" in body:
        return [x for r in body["results"] for t in sorted(r["predictions"]) for x in
                (r["predictions"][t]["value"], r["predictions"][t]["std"] or 0.0)]
    return [body["latency_ms"]["value"], body["latency_ms"]["std"]]


def http_equality(cuda: str, cpu: str, cells: list[str], pack: Path | None) -> list[dict[str, Any]]:
    rows = []
    for card, _ in find_cards():
        if card.kind != "network" and "nb201" in card.spaces:
            body = {"architectures": [{"space": "nb201", "arch": a} for a in cells], "predictor": card.name}
            a, b = http_values(cuda, "/v1/predict", json=body), http_values(cpu, "/v1/predict", json=body)
            rows.append({"predictor": f"{card.name} {card.version}", "requests": f"{len(cells)} NB201 cells",
                         **diff_stats(np.array(a), np.array(b))})
    if pack is not None:
        with tarfile.open(pack, "r:xz") as tar:
            members = [m for m in tar.getmembers() if m.name.endswith(".onnx")][:28]
            models = [(m.name, tar.extractfile(m).read()) for m in members]  # type: ignore[union-attr]
        for card, _ in find_cards():
            if card.kind != "network":
                continue
            a, b = [], []
            for _, data in models:
                headers = {"content-type": "application/octet-stream"}
                query = f"/v1/predict/onnx?predictor={card.name}"
                a += http_values(cuda, query, content=data, headers=headers)
                b += http_values(cpu, query, content=data, headers=headers)
            rows.append({"predictor": f"{card.name} {card.version}", "requests": f"{len(models)} ONNX networks",
                         **diff_stats(np.array(a), np.array(b))})
    for row in rows:
        print(f"HTTP {row['predictor']} ({row['requests']}): max abs {row['max_abs']:.2e}, max rel {row['max_rel']:.2e}")
    return rows


def exposure(base: str) -> dict[str, Any]:
    ready = httpx.get(f"{base}/readyz", timeout=30).json()
    info = [line for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines()
            if line.startswith("archcast_model_info{")]
    return {"readyz_provider": ready.get("provider"), "model_info": info}


def iobinding_rate(made: ort.InferenceSession, feeds: list[dict[str, np.ndarray]], batch: int, seconds: float) -> float:
    bindings = []
    for feed in feeds:
        binding = made.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        binding.bind_output("prediction", "cuda")
        bindings.append(binding)
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        made.run_with_iobinding(bindings[k % len(bindings)])
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def throughput(args: argparse.Namespace, cuda: str, cpu: str, cells: list[str], card_name: str, path: Path) -> list[dict]:
    sessions = {"cuda": session(path, args.providers_under_test), "cpu": session(path, "cpu")}
    rows = []
    with httpx.Client(timeout=120) as client:
        for batch in args.batch_sizes:
            groups = [cells[i : i + batch] for i in range(0, len(cells) - batch + 1, batch)][:16]
            bodies = [json.dumps({"architectures": [{"space": "nb201", "arch": a} for a in g], "predictor": card_name}).encode()
                      for g in groups]
            feeds = [feeds_of(g) for g in groups[:4]]
            row: dict[str, Any] = {"batch": batch}
            for label, base in (("http_cuda", cuda), ("http_cpu", cpu)):
                http_rate(client, f"{base}/v1/predict", bodies, batch, min(1.0, args.seconds))  # warm-up, fills the memo
                runs = [http_rate(client, f"{base}/v1/predict", bodies, batch, args.seconds) for _ in range(args.repeats)]
                row[label] = statistics.median(runs)
            for label, made in (("ort_cuda", sessions["cuda"]), ("ort_cpu", sessions["cpu"])):
                ort_rate(made, feeds, batch, min(1.0, args.seconds))
                row[label] = statistics.median(ort_rate(made, feeds, batch, args.seconds) for _ in range(args.repeats))
            if args.providers_under_test == "cuda":
                iobinding_rate(sessions["cuda"], feeds, batch, min(1.0, args.seconds))
                row["ort_cuda_iobinding"] = statistics.median(
                    iobinding_rate(sessions["cuda"], feeds, batch, args.seconds) for _ in range(args.repeats))
            rows.append(row)
            print(f"batch {batch}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in row.items() if k != "batch"))
    return rows


def row_passes(row: dict[str, Any], tolerance: float) -> bool:
    """Every value of the row within ``tolerance``, absolute or relative (a sufficient test from the row's maxima)."""
    return row["max_abs"] <= tolerance or row["max_rel"] <= tolerance


def markdown(meta: dict[str, Any], results: dict[str, Any], tolerance: float) -> str:
    lines = ["# GPU check: CUDA against CPU predictions, and throughput", "",
             f"GPU: {meta['gpu']}. Host: {meta['machine']}. onnxruntime {meta['onnxruntime']} "
             f"({meta['providers_available']}).", f"Command: `{meta['command']}`.", f"Setup: {meta['setup']}.",
             *([f"Run: {meta['run_note']}", ""] if meta.get("run_note") else []),
             f"Note: {MEMO_NOTE}.", "", "## Predictions: CUDA server against CPU server", "",
             f"Pass: every returned value and std within {tolerance:g}, absolute (in the target's unit) or relative: "
             f"**{'yes' if results['passed'] else 'NO'}**.", "",
             "| predictor | requests | values compared | max abs diff | max rel diff | within |",
             "|---|---|---|---|---|---|"]
    for r in results["http_equality"]:
        within = "absolute" if r["max_abs"] <= tolerance else "relative" if r["max_rel"] <= tolerance else "NO"
        lines.append(f"| {r['predictor']} | {r['requests']} | {r['n']} | {r['max_abs']:.2e} | {r['max_rel']:.2e} | {within} |")
    lines += ["", "Raw onnxruntime outputs (predictions in target units) of every shipped cell predictor on the same 4096 "
              "NB201 token batch:", "",
              "| predictor | CUDA (TF32 off, as served) max abs | CUDA with TF32 max abs |", "|---|---|---|"]
    for r in results["raw_equality"]:
        tf32 = f"{r['tf32_on']['max_abs']:.2e}" if "tf32_on" in r else "-"
        lines.append(f"| {r['predictor']} | {r['tf32_off']['max_abs']:.2e} | {tf32} |")
    ex = results["exposure"]
    lines += ["", "## Provider exposed", "", f"- `/readyz` provider: `{ex['readyz_provider']}`",
              *[f"- `{line}`" for line in ex["model_info"]], "",
              "## Throughput, NB201 cells per second (cache off, one client)", "",
              "| batch | HTTP, CUDA server | HTTP, CPU server | raw ORT CUDA | raw ORT CUDA, IO binding | raw ORT CPU | "
              "HTTP / raw (CUDA) |", "|---|---|---|---|---|---|---|"]
    for r in results["throughput"]:
        io = f"{r['ort_cuda_iobinding']:.0f}" if "ort_cuda_iobinding" in r else "-"
        lines.append(f"| {r['batch']} | {r['http_cuda']:.0f} | {r['http_cpu']:.0f} | {r['ort_cuda']:.0f} | {io} | "
                     f"{r['ort_cpu']:.0f} | {r['http_cuda'] / r['ort_cuda']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, default=None, help="weight-free ONNX networks for the network predictors")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256, 4096])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--providers-under-test", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, default=None, help="rewrite the markdown of this earlier gpu_check.json")
    args = parser.parse_args()
    if args.render is not None:
        report = json.loads(args.render.read_text())
        meta = report.pop("meta")
        report["passed"] = all(row_passes(r, args.tolerance) for r in report["http_equality"])
        args.render.write_text(json.dumps({"meta": meta, **report}, indent=1))
        args.render.with_suffix(".md").write_text(markdown(meta, report, args.tolerance))
        return

    cells = random_cells(12288)
    throughput_card = next((c, p) for c, p in find_cards() if c.name == "nb201-v1")
    results: dict[str, Any] = {"raw_equality": raw_equality(cells[:4096], args.providers_under_test)}
    with serving(ARCHCAST_PROVIDERS=args.providers_under_test, ARCHCAST_CACHE_SIZE="0") as cuda, \
            serving(ARCHCAST_PROVIDERS="cpu", ARCHCAST_CACHE_SIZE="0") as cpu:
        results["exposure"] = exposure(cuda)
        print(f"CUDA server: /readyz provider {results['exposure']['readyz_provider']}")
        results["http_equality"] = http_equality(cuda, cpu, cells[:4096], args.pack)
        results["throughput"] = throughput(args, cuda, cpu, cells, throughput_card[0].name, throughput_card[1])
    results["passed"] = all(row_passes(r, args.tolerance) for r in results["http_equality"])
    meta = {
        "gpu": gpu_model() or "no nvidia-smi answer",
        "machine": describe_machine(),
        "onnxruntime": ort.__version__,
        "providers_available": ", ".join(ort.get_available_providers()),
        "command": " ".join(["python -m benchmarks.gpu_check", *sys.argv[1:]]),
        "setup": f"servers (archcast serve, ARCHCAST_CACHE_SIZE=0, ORT intra-op threads {available_cpus()}) and the client "
        f"on one machine over loopback; throughput predictor {throughput_card[0].name} {throughput_card[0].version}; "
        f"median of {args.repeats} x {args.seconds:g} s after a warm-up",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    text = markdown(meta, results, args.tolerance)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
