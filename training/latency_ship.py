"""Ship the whole-network latency predictor: the in-domain seed runs as one ONNX ensemble plus its model card.

    python -m training.latency_ship --data training/datasets/cpu-ort-1t --runs runs/onnx_latency --name cpu-ort-1t-v1

The card carries the ensemble's metrics on the in-domain test split (never seen by any member: all members share
split seed 0), the uncertainty calibration (share of true latencies inside the predicted +-1 and +-2 std), the
device (CPU model, onnxruntime version) and each member's training time on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.card import PREDICTOR_DIR
from model.network_domain import training_domain
from model.network_tokenizer import (
    TOKENIZER_VERSION,
    assemble_tokens,
    batch_network_tokens,
    tokenize_networks,
    tokens_for_version,
)
from training.latency_data import shipping_split
from training.latency_export import export_ensemble, write_network_card
from training.latency_metrics import latency_metrics
from training.latency_trainer import LatencyTrainConfig
from training.netgen.files import META
from training.netgen.measure import PROVIDERS, cpu_model
from training.whole_network import WholeNetworkTransformer

PROVIDER_NAMES = {name: providers[0] for name, providers in PROVIDERS.items()}


def predict_onnx_rows(session: ort.InferenceSession, data, rows: np.ndarray, version: str) -> np.ndarray:  # noqa: ANN001
    """(len(rows), 2) latency ms and std of a network predictor's session trained on tokenizer ``version`` (its
    card's ``tokenizer``): a predictor of an earlier version gets the graphs as that version read them and the token
    columns it knows, the prefix of today's."""
    out = np.zeros((len(rows), 2))
    for start in range(0, len(rows), 32):
        chunk = rows[start : start + 32]
        if version == data.tokenizer:  # the dataset's own tokens
            batch = batch_network_tokens(
                [assemble_tokens(data.nodes[r], *data.edges[r]) for r in chunk], [data.features[r] for r in chunk]
            )
        else:
            batch = tokenize_networks([data.graphs[r] for r in chunk], max_nodes=10**9, version=version)
        tokens = tokens_for_version(batch.tokens, version)
        (pred,) = session.run(None, {"tokens": tokens, "mask": batch.mask, "features": batch.features})
        out[start : start + len(chunk)] = pred
    return out


def calibration(value: np.ndarray, std: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Share of true values within k std of the prediction, in log space (the ensemble's spread is log-normal)."""
    z = np.abs(np.log(true) - np.log(value)) / np.maximum(std / value, 1e-9)
    return {"within_1std_pct": float(100 * (z <= 1).mean()), "within_2std_pct": float(100 * (z <= 2).mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--runs", type=Path, default=Path("runs/onnx_latency"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=PREDICTOR_DIR)
    parser.add_argument("--name", default="cpu-ort-1t-v1")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument(
        "--aligned-to",
        type=Path,
        default=None,
        help="source dataset whose in-domain split places --data's networks by id (a dataset measured on another CPU; "
        "see benchmarks/onnx_latency_transfer.py)",
    )
    parser.add_argument(
        "--ids-below", type=int, default=None, help="only networks with smaller ids (the dataset before an extension)"
    )
    parser.add_argument("--member-prefix", default="in_domain_seed", help="member run folders: <runs>/<prefix><seed>")
    parser.add_argument("--priority", type=int, default=0, help="default among network predictors when a request names no device")
    args = parser.parse_args(argv)

    data, split = shipping_split(args.data, args.aligned_to, args.ids_below)
    members, seconds, inits = [], [], []
    for seed in args.seeds:
        run = args.runs / f"{args.member_prefix}{seed}"
        result = json.loads((run / "result.json").read_text())
        if result["test_ids"] != data.ids[split.test].tolist():
            raise SystemExit(f"{run} holds out other test networks than {split.name!r}")
        cfg = LatencyTrainConfig(**{**result["config"], "network": result["config"]["network"]})
        member = WholeNetworkTransformer(cfg.network_config(), cfg.readout)
        member.load_state_dict(torch.load(run / "best.pt"))
        members.append(member.eval())
        seconds.append(result["train_seconds"])
        inits.append(result["config"].get("init"))
    onnx_path = args.out / f"{args.name}.onnx"
    export_ensemble(members, onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    # calibrate the spread on validation only: the smallest scale with at least 68.3 % of validation truths within
    # +-1 std AND at least 95.4 % within +-2 std (errors are heavy-tailed: matching +-1 std alone left +-2 std at 86 %)
    val = predict_onnx_rows(session, data, split.val, TOKENIZER_VERSION)
    z = np.abs(np.log(data.latency_ms[split.val]) - np.log(val[:, 0])) / np.maximum(val[:, 1] / val[:, 0], 1e-9)
    std_scale = float(max(np.quantile(z, 0.683), np.quantile(z, 0.954) / 2))
    export_ensemble(members, onnx_path, std_scale)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pred = predict_onnx_rows(session, data, split.test, TOKENIZER_VERSION)
    true = data.latency_ms[split.test]
    metrics = {**latency_metrics(pred[:, 0], true), **calibration(pred[:, 0], pred[:, 1], true)}
    meta = json.loads((args.data / META).read_text())
    device = {k: meta[k] for k in ("device", "cpu", "cpu_id", "gpu", "onnxruntime") if k in meta}
    measured = meta.get("measure", {})
    device.update({"threads": measured.get("threads", 1), "batch": 1, "dtype": "float32",
                   "provider": PROVIDER_NAMES[measured.get("provider", "cpu")]})  # fmt: skip
    training = {
        "dataset": str(args.data),
        "networks": len(data),
        "ids_below": int(data.ids.max()) + 1,  # ids may have holes (records taken out of an extension)
        "split": "in_domain seed 0 (70/10/20 within every family)"
        if args.aligned_to is None
        else f"networks placed by id and family in the in-domain seed 0 split of {args.aligned_to}",
        "train": len(split.train),
        "val": len(split.val),
        "test": len(split.test),
        "members": len(members),
        "readout": members[0].readout,
        "member_seeds": args.seeds,
        "std_scale_fitted_on_val": std_scale,
        "member_train_seconds": seconds,
        **({"fine_tuned_from": inits} if any(inits) else {}),
        "machine": f"trained on {cpu_model()} ({os.cpu_count()} cores shared), 1 torch thread per member; "
        f"the latencies it learns were measured on {meta.get('gpu') or meta.get('cpu', 'the device above')}",
    }
    domain = training_domain(data.graphs[i] for i in split.train)
    card = write_network_card(onnx_path, args.name, args.version, device, metrics, training, args.priority, domain)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and {card}")


if __name__ == "__main__":
    main()
