"""Is a GPU latency label the GPU's or its clock's? The measurer's short protocol against a sustained one, same networks.

    python -m benchmarks.gpu_warmup --pack pack.tar.xz --ids 0-27 --out DIR        # on the GPU machine

Two lent H200 machines measured the same networks 1.48x apart with pass-to-pass noise of 3.5 % and 11.3 %
(``training/datasets/cuda-ort-h200-b/README.md``). The measurer times a batch-1 network for 0.1 s (at most 60 runs)
after 3 warm-up runs, right after building its session, with the GPU idle meanwhile; a GPU that lowers its clocks when
idle may still be ramping up then. Per network, in one session: ``short`` (the measurer's pass), ``sustained`` (runs
back to back for ``--sustain-s``, then timed for 0.2 s, at most 1000 runs), ``short_again`` (the measurer's pass right
after, the GPU now busy for a second). Two rounds over the networks give each protocol's round-to-round noise.
The SM clock (nvidia-smi) is read before each network and after its sustained runs. Writes ``gpu_warmup.json`` after
every network (a run cut short keeps what it did) and ``gpu_warmup.md`` at the end; ``--render`` rewrites the
markdown of a JSON, with ``--labels DIR ...`` datasets whose labels of the same ids are compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from training.netgen.measure import MeasureSettings, environment, make_session, session_feed, timed_runs
from training.netgen.pack import INDEX, restore_weights

PROTOCOLS = ("short", "sustained", "short_again")


def sm_clock_mhz() -> float | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.sm", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
        )
        return float(out.stdout.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def measure_network(onnx_bytes: bytes, provider: str, sustain_s: float) -> dict[str, Any]:
    settings = MeasureSettings(provider=provider, min_time_s=0.1)
    clock_idle = sm_clock_mhz()
    session = make_session(onnx_bytes, settings.threads, provider)
    feed = session_feed(session)
    for _ in range(settings.warmup):
        session.run(None, feed)
    result: dict[str, Any] = {"clock_idle_mhz": clock_idle}
    result["short"] = asdict(timed_runs(session, feed, settings.min_runs, settings.max_runs, settings.min_time_s))
    end = time.perf_counter() + sustain_s
    while time.perf_counter() < end:
        session.run(None, feed)
    result["sustained"] = asdict(timed_runs(session, feed, settings.min_runs, 1000, 0.2))
    result["clock_busy_mhz"] = sm_clock_mhz()
    result["short_again"] = asdict(timed_runs(session, feed, settings.min_runs, settings.max_runs, settings.min_time_s))
    return result


def parse_ids(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def summary(report: dict[str, Any], labels: dict[str, dict[int, float]]) -> dict[str, Any]:
    rounds = report["rounds"]
    ids = sorted({int(i) for r in rounds for i in r})
    full = [i for i in ids if all(str(i) in r for r in rounds)]
    out: dict[str, Any] = {"networks": len(full)}
    for protocol in PROTOCOLS:
        per = np.array([[r[str(i)][protocol]["min_ms"] for r in rounds] for i in full])
        best = per.min(axis=1)
        entry = {"median_ms": float(np.median(best))}
        if per.shape[1] >= 2:
            entry["round_noise_pct"] = float(np.median(np.abs(per[:, 0] - per[:, 1]) / per.mean(axis=1) * 100))
        entry["vs_short"] = float(np.median(best / np.array([min(r[str(i)]["short"]["min_ms"] for r in rounds) for i in full])))
        for name, label in labels.items():
            have = [k for k, i in enumerate(full) if i in label]
            if have:
                ratio = best[have] / np.array([label[full[k]] for k in have])
                scale = float(np.median(ratio))
                entry[f"ratio_to_{name}"] = scale
                entry[f"miss_after_scale_pct_{name}"] = float(np.mean(np.abs(ratio / scale - 1) * 100))
        out[protocol] = entry
    clocks = [(r[str(i)]["clock_idle_mhz"], r[str(i)]["clock_busy_mhz"]) for r in rounds for i in full]
    idle = [c[0] for c in clocks if c[0] is not None]
    busy = [c[1] for c in clocks if c[1] is not None]
    out["clock_idle_mhz_median"] = float(np.median(idle)) if idle else None
    out["clock_busy_mhz_median"] = float(np.median(busy)) if busy else None
    return out


def markdown(report: dict[str, Any], result: dict[str, Any]) -> str:
    meta = report["meta"]
    names = sorted({k.removeprefix("ratio_to_") for p in PROTOCOLS for k in result[p] if k.startswith("ratio_to_")})
    lines = [
        "# GPU latency: the measurer's short pass against a sustained one",
        "",
        f"Machine: {meta.get('gpu', '?')}, host {meta.get('cpu', '?')} ({meta.get('cpu_id', '?')}), onnxruntime "
        f"{meta.get('onnxruntime', '?')}, provider {meta['provider']}. Command: `{meta['command']}`.",
        f"{result['networks']} networks x {len(report['rounds'])} rounds. SM clock (nvidia-smi) before a network: median "
        f"{result['clock_idle_mhz_median']} MHz; after its sustained runs: {result['clock_busy_mhz_median']} MHz.",
        "",
        "Per protocol: the median over networks of the better round's minimum; round-to-round noise = median "
        "|round 1 - round 2| / mean; ratio to a dataset = median of (this / its label) over the same ids; miss after "
        "scale = mean |this / (label x that ratio) - 1|.",
        "",
        "| protocol | median ms | / short | round-to-round noise % |"
        + "".join(f" ratio to {n} | miss after scale % ({n}) |" for n in names),
        "|---|---|---|---|" + "---|---|" * len(names),
    ]
    for protocol in PROTOCOLS:
        e = result[protocol]
        cells = [f"{e[f'ratio_to_{n}']:.3f} | {e[f'miss_after_scale_pct_{n}']:.1f}" for n in names]
        noise = f"{e['round_noise_pct']:.1f}" if "round_noise_pct" in e else "-"
        lines.append(f"| {protocol} | {e['median_ms']:.3f} | {e['vs_short']:.3f} | {noise} |" + "".join(f" {c} |" for c in cells))
    return "\n".join(lines) + "\n"


def read_labels(directory: Path) -> dict[int, float]:
    rows = (json.loads(line) for line in (directory / "measurements.jsonl").read_text().splitlines() if line.strip())
    return {int(r["id"]): float(r["latency_ms"]) for r in rows if "latency_ms" in r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path)
    parser.add_argument("--ids", default="0-27", help="network ids, FIRST-LAST")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sustain-s", type=float, default=0.8)
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting networks after this many seconds")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_warmup.json / .md")
    parser.add_argument("--render", action="store_true", help="only rewrite the markdown of --out's JSON")
    parser.add_argument("--labels", type=Path, nargs="*", default=[], help="datasets whose labels of these ids compare")
    args = parser.parse_args()
    path = args.out / "gpu_warmup.json"
    labels = {d.name: read_labels(d) for d in args.labels}
    if args.render:
        report = json.loads(path.read_text())
        report["summary"] = summary(report, labels)
        path.write_text(json.dumps(report, indent=1))
        (args.out / "gpu_warmup.md").write_text(markdown(report, report["summary"]))
        print(markdown(report, report["summary"]))
        return

    started = time.perf_counter()
    with tarfile.open(args.pack, "r:xz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    json.loads(files.pop(INDEX))
    ids = parse_ids(args.ids)
    models = {i: restore_weights(files[f"{i}.onnx"], seed=i) for i in ids}
    command = "python -m benchmarks.gpu_warmup " + " ".join(sys.argv[1:])
    meta = {**environment(args.provider), "provider": args.provider, "command": command}
    report: dict[str, Any] = {"meta": meta, "rounds": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for round_index in range(args.rounds):
        report["rounds"].append({})
        for i in ids:
            if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
                break
            report["rounds"][round_index][str(i)] = measure_network(models[i], args.provider, args.sustain_s)
            path.write_text(json.dumps(report, indent=1))
        print(f"round {round_index}: {len(report['rounds'][round_index])} networks, {time.perf_counter() - started:.0f} s")
    report["summary"] = summary(report, labels)
    path.write_text(json.dumps(report, indent=1))
    (args.out / "gpu_warmup.md").write_text(markdown(report, report["summary"]))
    print(markdown(report, report["summary"]))


if __name__ == "__main__":
    main()
