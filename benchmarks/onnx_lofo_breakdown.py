"""Which op category carries a held-out family's error: leave-one-family-out predictors taken apart
(``service.breakdown``'s per-node shares) against onnxruntime's profiler.

    python -m benchmarks.onnx_lofo_breakdown --runs runs/lofo_bd --families shufflenet mnasnet mobilenetv3 resnet
        [--data training/datasets/cpu-ort-1t-epyc] [--per-family 30] [--out benchmarks/results/onnx_lofo_breakdown]

For each family: the leave-one-family-out model of ``--runs`` (``benchmarks.onnx_latency --protocol lofo``, which
never saw the family) and, for reference, the shipped predictor of the dataset's device (``--reference``, which saw
the family in training) predict ``--per-family`` of the family's networks from the reference's test split. Each
network's measured latency (the dataset's label) is split into op categories by the shares onnxruntime's profiler
gives on this machine (``benchmarks.onnx_breakdown``); each prediction by its own per-node shares, nodes fused at run
time counted in their kernel (``service.breakdown.runtime_roots``). The table gives, per category, the mean of
(predicted - measured) / measured latency: the categories' errors add up to the whole network's. Profiled shares
come from this machine's CPU, so the reference's own per-category errors show how far that alone moves them.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import describe_machine
from benchmarks.onnx_breakdown import ORDER, category, profiled_shares
from benchmarks.onnx_calibration import base_test_keys
from model.card import PREDICTOR_DIR
from model.network_tokenizer import graph_for_version, tokenize_networks, tokens_for_version
from model.onnx_graph import ParseOptions, parse_onnx
from service.breakdown import breakdown
from service.predictor import load_registry
from training.latency_data import load_latency_dataset, network_keys
from training.latency_trainer import LatencyTrainConfig
from training.netgen.export import export_spec
from training.netgen.files import latest_records
from training.whole_network import WholeNetworkTransformer


def lofo_model(runs: Path, family: str) -> tuple[WholeNetworkTransformer, str]:
    """The seed-0 leave-one-family-out model of ``family`` and its tokenizer version."""
    (run,) = sorted(runs.glob(f"leave_out_{family}_*seed0"))
    result = json.loads((run / "result.json").read_text())
    cfg = LatencyTrainConfig(**{k: v for k, v in result["config"].items() if k in LatencyTrainConfig.__dataclass_fields__})
    model = WholeNetworkTransformer(cfg.network_config(), cfg.readout)
    model.load_state_dict(torch.load(run / "best.pt"))
    return model.eval(), str(result.get("tokenizer", ""))


def lofo_shares(model: WholeNetworkTransformer, graph, version: str) -> tuple[dict[str, float], float]:
    """Category shares of the model's per-node sum (fused nodes in their kernel's category) and its predicted ms."""
    from service.breakdown import runtime_roots

    read = graph_for_version(graph, version)
    batch = tokenize_networks([graph], max_nodes=max(graph.n, 1), version=version)
    tokens = torch.from_numpy(tokens_for_version(batch.tokens, version))
    with torch.no_grad():
        _, _, cost = model.node_costs(tokens, torch.from_numpy(batch.mask))
    cost = cost[0, : read.n].double()
    shares = torch.softmax(cost, dim=0).numpy()
    roots = runtime_roots(read)
    out: dict[str, float] = defaultdict(float)
    for j, share in enumerate(shares):
        out[category(read.nodes[roots[j]].op_type)] += float(share)
    return {c: out.get(c, 0.0) for c in ORDER}, float(torch.logsumexp(cost, dim=0).exp())


def reference_shares(predictor, graph) -> tuple[dict[str, float], float]:
    value, _ = predictor.run(graph)
    out: dict[str, float] = defaultdict(float)
    for row in breakdown(predictor, graph, value)["by_op_type"]:
        out[category(row["op_type"])] += row["share"]
    return {c: out.get(c, 0.0) for c in ORDER}, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--families", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t-epyc"))
    parser.add_argument("--reference", default="cpu-ort-1t-epyc-v1")
    parser.add_argument("--split-data", type=Path, default=Path("training/datasets/cpu-ort-1t"),
                        help="the dataset whose in-domain split the reference's test networks come from")  # fmt: skip
    parser.add_argument("--per-family", type=int, default=30)
    parser.add_argument("--runs-per-profile", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_lofo_breakdown"))
    args = parser.parse_args()
    reference = load_registry(PREDICTOR_DIR, providers="cpu").networks[args.reference]
    card = json.loads((PREDICTOR_DIR / f"{args.reference}.card.json").read_text())
    test_keys = base_test_keys(card, args.split_data)
    records = latest_records(args.data)
    data = load_latency_dataset(args.data, progress=False)
    keys = network_keys(data)
    report: dict = {"families": {}}
    for family in args.families:
        model, version = lofo_model(args.runs, family)
        version = version or reference.card.tokenizer
        rows = [i for i, k in enumerate(keys) if k in test_keys and data.families[i] == family]
        rows = sorted(random.Random(0).sample(rows, min(args.per_family, len(rows))))
        errors: dict[str, list[dict[str, float]]] = {"lofo": [], "reference": []}
        for r in rows:
            record = records[int(data.ids[r])]
            onnx_bytes = export_spec(record["family"], record["spec"])
            graph = parse_onnx(onnx_bytes, ParseOptions())
            measured, _ = profiled_shares(onnx_bytes, args.runs_per_profile)
            label = float(data.latency_ms[r])
            for name, (shares, value) in (("lofo", lofo_shares(model, graph, version)),
                                          ("reference", reference_shares(reference, graph))):  # fmt: skip
                errors[name].append({c: (shares[c] * value - measured[c] * label) / label for c in ORDER}
                                    | {"total": (value - label) / label})  # fmt: skip
        report["families"][family] = {
            name: {k: float(np.mean([e[k] for e in errs])) for k in (*ORDER, "total")} for name, errs in errors.items()
        } | {"networks": len(rows), "mape": {name: float(np.mean([abs(e["total"]) for e in errs])) for name, errs in
                                             errors.items()}}  # fmt: skip
        print(family, json.dumps(report["families"][family]["lofo"]))
    meta = {"machine": describe_machine(), "runs": str(args.runs), "reference": args.reference,
            "command": f"python -m benchmarks.onnx_lofo_breakdown --runs {args.runs} --families {' '.join(args.families)} "
                       f"--per-family {args.per_family} --out {args.out}"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, **report}, indent=1))
    text = markdown(report, meta)
    args.out.with_suffix(".md").write_text(text)
    print(text)


def markdown(report: dict, meta: dict) -> str:
    shown = [c for c in ORDER if any(abs(f[m][c]) >= 0.005 for f in report["families"].values() for m in ("lofo", "reference"))]
    lines = [
        "# Leave-one-family-out error, taken apart by op category",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Leave-one-family-out models: seed 0 of "
        f"`{meta['runs']}`; reference: the shipped `{meta['reference']}` (saw every family). Each cell: mean over the "
        "family's networks of (predicted - measured) ms in that category / measured latency, %; the categories add up "
        "to `total`, the signed error of the whole network. Measured ms per category = the dataset's label x the "
        "profiled share on this machine.",
        "",
        "| family | networks | model | " + " | ".join(shown) + " | total | MAPE |",
        "|---|---|---|" + "---|" * (len(shown) + 2),
    ]
    for family, f in report["families"].items():
        for name in ("lofo", "reference"):
            cells = " | ".join(f"{100 * f[name][c]:+.1f}" for c in shown)
            lines.append(f"| {family} | {f['networks']} | {name} | {cells} | {100 * f[name]['total']:+.1f} | "
                         f"{100 * f['mape'][name]:.1f} |")  # fmt: skip
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    main()
