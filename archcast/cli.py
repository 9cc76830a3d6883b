"""The ``archcast`` console command: serve, train, evaluate, export, predict, split.

Training subcommands import torch lazily, so ``serve`` and ``predict`` work with the runtime dependencies only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.main import serve

    from service.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    serve(Settings(**overrides))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from model.parsers.nb201 import NB201_NUM_CELLS
    from training.splits import write_split

    for seed in args.seeds:
        print(write_split(NB201_NUM_CELLS, args.n_train, args.n_val, seed))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.run import train_run
    from training.splits import split_path
    from training.targets import DEFAULT_TARGETS
    from training.trainer import TrainConfig

    split = args.split or str(split_path(args.n_train, args.n_val, args.seed))
    network = {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads}
    cfg = TrainConfig(
        targets=args.targets or list(DEFAULT_TARGETS),
        split=split,
        seed=args.seed,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        augment=not args.no_augment,
        consistency_weight=0.0 if args.no_consistency else args.consistency_weight,
        threads=args.threads,
        network=network,
    )
    result = train_run(cfg, Path(args.run_dir))
    print(json.dumps({k: {m: round(v, 4) for m, v in d.items()} for k, d in result["test"].items()}, indent=1))
    print(f"training time: {result['train_seconds']} s; run directory: {args.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_run

    metrics = evaluate_run(Path(args.run_dir), Path(args.out) if args.out else None)
    print(json.dumps(metrics, indent=1))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_run

    onnx_path, card_path = export_run(Path(args.run_dir), Path(args.out), args.name, args.version)
    print(f"wrote {onnx_path} and {card_path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from service.predictor import predict_local

    text = args.architecture
    if Path(text).is_file():
        text = Path(text).read_text()
    architecture = json.loads(text) if text.lstrip().startswith("{") else {"space": "nb201", "arch": text}
    print(json.dumps(predict_local(architecture, args.targets), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the prediction service (settings from ARCHCAST_* environment variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_cmd_serve)

    split = sub.add_parser("split", help="write NB201 split files (train / val / test disjoint)")
    split.add_argument("--n-train", type=int, default=1563)
    split.add_argument("--n-val", type=int, default=200)
    split.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    split.set_defaults(func=_cmd_split)

    train = sub.add_parser("train", help="train a fusion transformer on NB201 (resumes if the run directory has a checkpoint)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--split", help="split file; default: training/splits/nb201_train{N}_val{V}_seed{S}.json")
    train.add_argument("--n-train", type=int, default=1563)
    train.add_argument("--n-val", type=int, default=200)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--targets", nargs="+")
    train.add_argument("--epochs", type=int, default=200)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--d-model", type=int, default=128)
    train.add_argument("--layers", type=int, default=4)
    train.add_argument("--heads", type=int, default=4)
    train.add_argument("--consistency-weight", type=float, default=0.5)
    train.add_argument("--no-augment", action="store_true", help="train on the canonical order only")
    train.add_argument("--no-consistency", action="store_true", help="drop the architecture-consistency loss")
    train.add_argument("--threads", type=int, default=2)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="test-split metrics, markdown table and scatter plot of a run")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--out", help="output directory (default: the run directory)")
    evaluate.set_defaults(func=_cmd_evaluate)

    export = sub.add_parser("export", help="export a run to ONNX + model card")
    export.add_argument("--run-dir", required=True)
    export.add_argument("--out", default="model/predictors")
    export.add_argument("--name", default="nb201-v1")
    export.add_argument("--version", default="1.0.0")
    export.set_defaults(func=_cmd_export)

    predict = sub.add_parser("predict", help="predict with the shipped predictors, in-process")
    predict.add_argument("architecture", help="an NB201 arch string, a JSON architecture object, or a file holding one")
    predict.add_argument("--targets", nargs="+")
    predict.set_defaults(func=_cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
