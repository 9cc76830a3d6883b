"""Which op category carries a held-out family's error: a leave-one-family-out predictor and the shipped
in-domain one, both taken apart by op category (per-node shares, ``service.breakdown``), on the same networks.

    python -m benchmarks.onnx_lofo_breakdown --runs runs/lofo_bd --families shufflenet mnasnet mobilenetv3 resnet
        [--data training/datasets/cpu-ort-1t-epyc] [--per-family 60] [--out benchmarks/results/onnx_lofo_breakdown]

For each family: the seed-0 leave-one-family-out model of ``--runs`` (``benchmarks.onnx_latency --protocol lofo``,
which never saw the family) and the shipped predictor of the dataset's device (``--reference``, which saw it, and
lands within a few % on its test networks) predict ``--per-family`` of the family's networks from the reference's
test split. Each prediction is split into op categories (convolutions further into depthwise, 1x1 and dense k x k)
by its own per-node shares, nodes fused at run time counted in their kernel (``service.breakdown.runtime_roots``).
Per category, (leave-one-family-out ms - reference ms) / measured latency says where the model that never saw the
family departs from one that did; the categories add up to the difference of the two whole-network errors.
No measurement: about 1 min.
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
from benchmarks.onnx_breakdown import ORDER, category
from benchmarks.onnx_calibration import base_test_keys
from model.card import PREDICTOR_DIR
from model.network_tokenizer import graph_for_version, tokenize_networks, tokens_for_version
from model.onnx_graph import ParseOptions, parse_onnx
from service.breakdown import breakdown_session, node_shares, runtime_roots
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


CONV_KINDS = ("depthwise conv", "1x1 conv", "dense kxk conv")
GROUPS = (*CONV_KINDS, *(c for c in ORDER if c != "convolution"))


def group_of(node) -> str:  # noqa: ANN001 - a model.onnx_graph.NetNode
    """The op category, with convolutions split into depthwise (one group per channel), 1x1 and dense k x k."""
    kind = category(node.op_type)
    if kind != "convolution":
        return kind
    groups = int(node.attrs.get("group", 1))
    channels = node.input_shapes[0][1] if node.input_shapes and len(node.input_shapes[0]) > 1 else 0
    if groups > 1 and groups == channels:
        return "depthwise conv"
    return "1x1 conv" if all(int(k) == 1 for k in node.attrs.get("kernel_shape", [1])) else "dense kxk conv"


def grouped(read, shares: np.ndarray) -> dict[str, float]:  # noqa: ANN001 - the graph the predictor reads
    """Per group, the summed share of the nodes, each counted in the kernel onnxruntime runs it in."""
    roots = runtime_roots(read)
    out: dict[str, float] = defaultdict(float)
    for j, share in enumerate(shares):
        out[group_of(read.nodes[roots[j]])] += float(share)
    return {g: out.get(g, 0.0) for g in GROUPS}


def lofo_shares(model: WholeNetworkTransformer, graph, version: str) -> tuple[dict[str, float], float]:  # noqa: ANN001
    """Group shares of the model's per-node sum and its predicted ms."""
    read = graph_for_version(graph, version)
    batch = tokenize_networks([graph], max_nodes=max(graph.n, 1), version=version)
    tokens = torch.from_numpy(tokens_for_version(batch.tokens, version))
    with torch.no_grad():
        _, _, cost = model.node_costs(tokens, torch.from_numpy(batch.mask))
    cost = cost[0, : read.n].double()
    return grouped(read, torch.softmax(cost, dim=0).numpy()), float(torch.logsumexp(cost, dim=0).exp())


def reference_shares(predictor, graph) -> tuple[dict[str, float], float]:  # noqa: ANN001
    """The same for a shipped predictor, from the per-node tensors of its ONNX graph (``service.breakdown``)."""
    value, _ = predictor.run(graph)
    read = graph_for_version(graph, predictor.card.tokenizer)
    feeds = predictor.graph_feeds(graph)
    shares, _ = node_shares(breakdown_session(predictor), feeds, read.n)
    return grouped(read, shares), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--families", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t-epyc"))
    parser.add_argument("--reference", default="cpu-ort-1t-epyc-v1")
    parser.add_argument("--split-data", type=Path, default=Path("training/datasets/cpu-ort-1t"),
                        help="the dataset whose in-domain split the reference's test networks come from")  # fmt: skip
    parser.add_argument("--per-family", type=int, default=60)
    parser.add_argument("--trained-by", default="", help="the command that trained --runs, quoted in the report")
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
        gaps: list[dict[str, float]] = []
        totals: dict[str, list[float]] = {"lofo": [], "reference": []}
        for r in rows:
            record = records[int(data.ids[r])]
            onnx_bytes = export_spec(record["family"], record["spec"])
            graph = parse_onnx(onnx_bytes, ParseOptions())
            label = float(data.latency_ms[r])
            (lofo, lofo_ms), (ref, ref_ms) = lofo_shares(model, graph, version), reference_shares(reference, graph)
            gaps.append({c: (lofo[c] * lofo_ms - ref[c] * ref_ms) / label for c in GROUPS})
            totals["lofo"].append((lofo_ms - label) / label)
            totals["reference"].append((ref_ms - label) / label)
        report["families"][family] = {
            "networks": len(rows),
            "signed": {c: float(np.mean([g[c] for g in gaps])) for c in GROUPS},
            "absolute": {c: float(np.mean([abs(g[c]) for g in gaps])) for c in GROUPS},
            "error": {name: float(np.mean(errs)) for name, errs in totals.items()},
            "mape": {name: float(np.mean(np.abs(errs))) for name, errs in totals.items()},
        }
        print(family, json.dumps(report["families"][family]))
    meta = {"machine": describe_machine(), "runs": str(args.runs), "reference": args.reference, "trained_by": args.trained_by,
            "command": f"python -m benchmarks.onnx_lofo_breakdown --runs {args.runs} --families {' '.join(args.families)} "
                       f"--per-family {args.per_family} --out {args.out}"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, **report}, indent=1))
    text = markdown(report, meta)
    args.out.with_suffix(".md").write_text(text)
    print(text)


def markdown(report: dict, meta: dict) -> str:
    families = report["families"]
    shown = [c for c in GROUPS if any(f["absolute"][c] >= 0.002 for f in families.values())]
    lines = [
        "# Leave-one-family-out error, taken apart by op category",
        "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Leave-one-family-out models: seed 0 of "
        f"`{meta['runs']}`" + (f" (trained by `{meta['trained_by']}`)" if meta.get("trained_by") else "")
        + f"; reference: the shipped `{meta['reference']}`, which saw every family. Each category cell: "
        "mean over the family's networks of (leave-one-family-out ms - reference ms) in that category / measured "
        "latency, % (signed, then mean absolute in brackets). The signed cells add up to the difference of the two "
        "mean signed errors.",
        "",
        "| family | networks | " + " | ".join(shown) + " | error, leave-one-family-out | error, reference | MAPE lofo / ref |",
        "|---|---|" + "---|" * (len(shown) + 3),
    ]
    for family, f in families.items():
        cells = " | ".join(f"{100 * f['signed'][c]:+.1f} ({100 * f['absolute'][c]:.1f})" for c in shown)
        lines.append(f"| {family} | {f['networks']} | {cells} | {100 * f['error']['lofo']:+.1f} | "
                     f"{100 * f['error']['reference']:+.1f} | {100 * f['mape']['lofo']:.1f} / "
                     f"{100 * f['mape']['reference']:.1f} |")  # fmt: skip
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    main()
