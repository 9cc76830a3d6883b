"""Why held-out Swin networks miss by a third on the Xeon and by 8 % on the EPYC: denormal attention weights.

Swin's shifted windows add a -100 mask to the attention logits of positions that must not see each other; the
softmax turns exp(-100) ~ 4e-44 into float32 *denormals*, and the next product (attention x values) multiplies them.
Some x86 cores handle denormal operands through slow microcode assists unless denormals-are-zero is set
(onnxruntime: ``session.set_denormal_as_zero``, off by default); how much a core pays differs by design, and the Zen
core measured here hardly pays. No other family of the dataset has such a mask, so no predictor trained on the other
families can know this cost. The benchmark shows it three ways (the Xeon's side by correlation, not by timing it):

1. the datasets: the same networks measured on both CPUs (ids below 3150 of ``--xeon`` and ``--epyc``): the EPYC /
   Xeon latency ratio per family, and within Swin its rank correlation with the share of MACs that meet a masked
   (denormal) attention weight, next to ViT's with its attention share (attention without a mask);
2. the mechanism, on this machine: the share of softmax outputs that are denormal in exported Swin and ViT networks
   of the dataset;
3. the cost, on this machine: each of those networks timed with denormals-are-zero on and off, alternating in one
   process (ratio of the minima; run it on the Xeon to see the Intel side).

    python -m benchmarks.onnx_swin_denormals --out benchmarks/results/onnx_swin_denormals
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from scipy.stats import spearmanr

from benchmarks.machine import describe_machine
from training.netgen.export import export_spec
from training.netgen.files import latest_records
from training.netgen.measure import cpu_model, session_feed

SHARED_IDS = 3150  # networks 0-3149 are the same networks in both datasets (same generator seed and families)
TINY = np.finfo(np.float32).tiny  # the smallest normal float32; nonzero values below it are denormal


def swin_masked_shares(spec: dict) -> tuple[float, float]:
    """(MACs of attention x values that meet a masked weight, MACs of Q.K^T and A.V) of one Swin spec."""
    from training.netgen.zoo import swin

    model = swin.build(spec)
    masked = attention = 0.0
    for block in model.modules():
        if isinstance(block, swin.SwinBlock):
            head_dim = block.ln1.normalized_shape[0] // block.heads
            windows, tokens = (block.size // block.window) ** 2, block.window**2
            attention += 2 * windows * block.heads * tokens * tokens * head_dim  # Q.K^T and A.V
            masked += float((block.mask != 0).sum()) * block.heads * head_dim
    return masked, attention


def attention_macs(graph: dict) -> tuple[float, float]:
    """(MACs of products of two activations, all MACs) of a dataset graph (``NetworkGraph.to_dict`` form)."""
    from model.onnx_graph import NetworkGraph

    net = NetworkGraph.from_dict(graph)
    total = sum(n.cost.macs for n in net.nodes)
    products = sum(n.cost.macs for n in net.nodes if n.op_type == "MatMul" and not n.attrs.get("_weights"))
    return products, total


def dataset_evidence(xeon: Path, epyc: Path) -> dict:
    from training.netgen.files import read_graphs

    a, b = latest_records(xeon), latest_records(epyc)
    shared = [
        i
        for i in sorted(a)
        if i < SHARED_IDS and i in b and "latency_ms" in a[i] and "latency_ms" in b[i] and a[i]["family"] == b[i]["family"]
    ]
    ratio = {i: b[i]["latency_ms"] / a[i]["latency_ms"] for i in shared}
    families = sorted({a[i]["family"] for i in shared})
    per_family = {f: float(np.median([ratio[i] for i in shared if a[i]["family"] == f])) for f in families}
    graphs = read_graphs(xeon)
    swin_ids = [i for i in shared if a[i]["family"] == "swin"]
    vit_ids = [i for i in shared if a[i]["family"] == "vit"]
    swin_ratio = np.array([ratio[i] for i in swin_ids])
    masked, attention, total = [], [], []
    for i in swin_ids:
        m, att = swin_masked_shares(a[i]["spec"])
        masked.append(m)
        attention.append(att)
        total.append(attention_macs(graphs[i])[1])
    masked_share = np.array(masked) / np.array(total)
    attention_share = np.array(attention) / 2 / np.array(total)
    vit_share = np.array([p / t for p, t in (attention_macs(graphs[i]) for i in vit_ids)])
    vit_ratio = np.array([ratio[i] for i in vit_ids])
    quartiles = np.quantile(masked_share, [0, 0.25, 0.5, 0.75, 1])
    quartile = np.clip(np.searchsorted(quartiles, masked_share, side="right") - 1, 0, 3)
    others = float(np.median([ratio[i] for i in shared if a[i]["family"] not in ("swin", "vit")]))
    bins = [
        {
            "masked_share": [float(quartiles[q]), float(quartiles[q + 1])],
            "n": int((quartile == q).sum()),
            "median_ratio": float(np.median(swin_ratio[quartile == q])),
            "xeon_slowdown": others / float(np.median(swin_ratio[quartile == q])),
        }
        for q in range(4)
    ]
    return {
        "networks": len(shared),
        "ratio_per_family": per_family,
        "swin_spearman_masked_share": float(spearmanr(swin_ratio, masked_share)[0]),
        "swin_spearman_attention_share": float(spearmanr(swin_ratio, attention_share)[0]),
        "vit_spearman_attention_share": float(spearmanr(vit_ratio, vit_share)[0]),
        "swin_bins": bins,
        "ratio_other_families": others,
        "xeon_cpu": json.loads((xeon / "meta.json").read_text()).get("cpu"),
        "epyc_cpu": json.loads((epyc / "meta.json").read_text()).get("cpu"),
    }


def softmax_outputs_model(data: bytes) -> tuple[bytes, list[str]]:
    """The model with every Softmax output added to the graph outputs, and those output names."""
    model = onnx.load_from_string(data)
    names = [node.output[0] for node in model.graph.node if node.op_type == "Softmax"]
    known = {o.name for o in model.graph.output}
    for name in names:
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model.SerializeToString(), names


def denormal_share(data: bytes) -> dict:
    """Share of all softmax output values that are denormal (0 < |v| < float32 tiny) in one run on random inputs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    probed, names = softmax_outputs_model(data)
    if not names:
        return {"softmax_values": 0, "denormal_share": 0.0}
    session = ort.InferenceSession(probed, options, providers=["CPUExecutionProvider"])
    values = session.run(names, session_feed(session))
    flat = np.abs(np.concatenate([v.ravel() for v in values]))
    return {"softmax_values": int(flat.size), "denormal_share": float(((flat > 0) & (flat < TINY)).mean())}


def daz_ratio(data: bytes, rounds: int, runs: int) -> dict:
    """Minimum latency with denormals-are-zero on and off (1 thread), alternating ``rounds`` times ``runs`` runs."""
    sessions = {}
    for daz in (False, True):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if daz:
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
        sessions[daz] = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    feed = session_feed(sessions[False])
    best = {False: float("inf"), True: float("inf")}
    for session in sessions.values():
        session.run(None, feed)
    for _ in range(rounds):
        for daz, session in sessions.items():
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, feed)
                best[daz] = min(best[daz], time.perf_counter() - start)
    return {"off_ms": 1e3 * best[False], "on_ms": 1e3 * best[True], "on_over_off": best[True] / best[False]}


def machine_evidence(xeon: Path, per_family: int, rounds: int, runs: int) -> list[dict]:
    records = latest_records(xeon)
    rows = []
    for family in ("swin", "vit"):
        ids = [i for i in sorted(records) if records[i]["family"] == family and "latency_ms" in records[i]][:per_family]
        for i in ids:
            data = export_spec(family, records[i]["spec"])
            rows.append({"id": i, "family": family, **denormal_share(data), **daz_ratio(data, rounds, runs)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def report(result: dict) -> str:
    data, rows = result["datasets"], result["this_machine"]
    lines = [
        "# Held-out Swin on the Xeon: denormal attention weights",
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`.",
        "",
        "Swin's shifted windows add -100 to the logits of masked positions; softmax makes exp(-100) a float32 denormal,",
        "and attention x values multiplies it. Leave-one-family-out on Swin misses by 33.4 % on the Xeon",
        "(`onnx_latency_lofo20_tokenizer5_3seeds.md`) and by 7.9 % on the EPYC (`onnx_latency_epyc_lofo.md`).",
        "",
        f"## 1. The datasets: {data['networks']} networks measured on both CPUs",
        "",
        f"{data['epyc_cpu']} / {data['xeon_cpu']} latency, median per family (lower: the Xeon is slower on it):",
        "",
        "| family | EPYC / Xeon |",
        "|---|---|",
        *[f"| {f} | {r:.2f} |" for f, r in sorted(data["ratio_per_family"].items(), key=lambda kv: kv[1])],
        "",
        "Within Swin, the ratio against the share of the network's MACs that meet a masked (denormal) attention weight:",
        "",
        f"| masked MAC share (quartiles) | networks | median EPYC / Xeon | Xeon slowdown against the 12 CNN families "
        f"({data['ratio_other_families']:.2f}) |",
        "|---|---|---|---|",
        *[
            f"| {b['masked_share'][0]:.4f}-{b['masked_share'][1]:.4f} | {b['n']} | {b['median_ratio']:.2f} | "
            f"{b['xeon_slowdown']:.2f}x |"
            for b in data["swin_bins"]
        ],
        "",
        f"Spearman, Swin: ratio vs masked MAC share **{data['swin_spearman_masked_share']:.2f}**, vs attention MAC share "
        f"{data['swin_spearman_attention_share']:.2f}; ViT (attention without a mask): ratio vs attention MAC share "
        f"**{data['vit_spearman_attention_share']:+.2f}**. Within Swin the two shares move together, but more attention "
        "makes a ViT relatively *faster* on the Xeon and a Swin much slower: the Xeon's extra cost follows the mask, not "
        "attention (a correlation; the Xeon itself was not timed with and without denormals-are-zero).",
        "",
        f"## 2-3. This machine ({result['cpu']}): denormals present, and what denormals-are-zero changes here",
        "",
        "| network | family | softmax values | denormal share | DAZ off ms | DAZ on ms | on / off |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['id']} | {r['family']} | {r['softmax_values']} | {100 * r['denormal_share']:.1f} % | {r['off_ms']:.2f} | "
            f"{r['on_ms']:.2f} | {r['on_over_off']:.3f} |"
            for r in rows
        ],
        "",
        "On this core denormals-are-zero moves Swin and ViT alike by a few per cent at most: it handles denormal",
        "operands at (nearly) full speed. On the Xeon the same command times what the mask costs there; the datasets",
        "above put it at the slowdown column. The mask is Swin's alone in the dataset (BERT-style masks of -1e4",
        "underflow to exact zeros), so a predictor that never saw Swin cannot learn it: on the Xeon, held-out Swin",
        "is a hardware effect no other family teaches, not a tokenizer gap.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xeon", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--epyc", type=Path, default=Path("training/datasets/cpu-ort-1t-epyc"))
    parser.add_argument("--per-family", type=int, default=4, help="Swin and ViT networks timed on this machine")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_swin_denormals"))
    args = parser.parse_args(argv)
    result = {
        "command": "python -m benchmarks.onnx_swin_denormals " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "cpu": cpu_model(),
        "datasets": dataset_evidence(args.xeon, args.epyc),
        "this_machine": machine_evidence(args.xeon, args.per_family, args.rounds, args.runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = report(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
