"""Server memory for one large upload: how many MB a ~100 MB ONNX upload adds to the serving process's peak RSS.

    python -m benchmarks.upload_memory --out benchmarks/results/upload_memory

For each way a client sends a model (raw body to ``/v1/predict/onnx``, multipart ``file`` to it, multipart
``models`` to ``/v1/calibrate/onnx``), a fresh server process (``archcast serve``, CPU, in-process cache) is
started, warmed up with a weight-free request (sessions and tokenizer loaded), and sent ResNet-50 with its weights
once. The figure is the process's peak resident memory (``VmHWM``) after the upload minus its resident memory
(``VmRSS``) just before it, read from ``/proc``; ``--repeats`` fresh servers per mode, median reported. Linux only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from benchmarks.machine import describe_machine
from benchmarks.report import write_report
from benchmarks.service_throughput import free_port, start_server

MODES = ("raw body", "multipart file", "calibration upload")


def resnet50_bytes() -> bytes:
    from benchmarks.onnx_realworld import canonical_networks
    from training.netgen.export import build_network, export_onnx_bytes

    spec = next(spec for _, name, spec in canonical_networks() if name == "resnet50")
    return export_onnx_bytes(build_network("resnet", spec), 224)


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def send(client: httpx.Client, mode: str, data: bytes, resolution: int) -> httpx.Response:
    if mode == "raw body":
        return client.post(f"/v1/predict/onnx?resolution={resolution}", content=data)
    if mode == "multipart file":
        return client.post(f"/v1/predict/onnx?resolution={resolution}", files={"file": ("m.onnx", data)})
    lines = "".join(json.dumps({"onnx": "m.onnx", "latency_ms": 10.0 + i, "resolution": 160 + 16 * i}) + "\n" for i in range(5))
    form = {"device": "memory-check", "measurements": lines}
    return client.post("/v1/calibrate/onnx", data=form, files=[("models", ("m.onnx", data))])


def one_server(mode: str, heavy: bytes, light: bytes) -> dict:
    port = free_port()
    server = start_server(port, ARCHCAST_PROVIDERS="cpu", ARCHCAST_WORKERS="1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            send(client, "raw body", light, 192).raise_for_status()  # warm-up: sessions, tokenizer, first allocations
            before = proc_kib(server.pid, "VmRSS")
            started = time.perf_counter()
            response = send(client, mode, heavy, 224)
            seconds = time.perf_counter() - started
            response.raise_for_status()
            peak = proc_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"rss_before_mb": before / 1024, "peak_mb": peak / 1024, "extra_mb": (peak - before) / 1024, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/upload_memory"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="", help="what this run measures (e.g. the commit), written into the report")
    parser.add_argument("--compare", type=Path, help="an earlier report (.json) of another commit, shown next to this one")
    args = parser.parse_args(argv)

    from model.onnx_weights import weight_free

    heavy = resnet50_bytes()
    light = weight_free(heavy)
    runs: dict[str, list[dict]] = {}
    for mode in MODES:
        for repeat in range(args.repeats):
            runs.setdefault(mode, []).append(one_server(mode, heavy, light))
            print(f"{mode} {repeat + 1}/{args.repeats}: +{runs[mode][-1]['extra_mb']:.0f} MB", file=sys.stderr)
    command = "python -m benchmarks.upload_memory " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "machine": describe_machine(),
        "command": command.strip(),
        "label": args.label,
        "upload_mb": len(heavy) / 1e6,
        "runs": runs,
        "median_extra_mb": {mode: statistics.median(r["extra_mb"] for r in runs[mode]) for mode in MODES},
    }
    if args.compare:
        report["compare"] = json.loads(args.compare.read_text())
    write_report(args.out, report, markdown(report))


def markdown(report: dict) -> str:
    lines = ["# Server memory for one ~100 MB upload", ""]
    for part in (report, report.get("compare")):
        if part is None:
            continue
        lines += [
            f"Machine: {part['machine']}. Command: `{part['command']}`." + (f" {part['label']}" if part["label"] else ""),
            "",
            f"Upload: ResNet-50 with weights, {part['upload_mb']:.1f} MB. Peak RSS (VmHWM) after the upload minus RSS"
            " just before it, in a fresh warmed-up server process per run.",
            "",
            "| how it is sent | extra peak MB (median) | per run | x upload size | upload to answer s (median) |",
            "|---|---|---|---|---|",
        ]
        for mode, runs in part["runs"].items():
            extra = part["median_extra_mb"][mode]
            per_run = " / ".join(f"{r['extra_mb']:.0f}" for r in runs)
            seconds = statistics.median(r["seconds"] for r in runs)
            lines.append(f"| {mode} | {extra:.0f} | {per_run} | {extra / part['upload_mb']:.1f} | {seconds:.2f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
