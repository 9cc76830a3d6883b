"""The ``archcast`` console command: serve, train, evaluate, export, predict, rank, split.

Training subcommands import torch lazily, so ``serve``, ``predict`` and ``rank`` work with the runtime dependencies only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.main import serve
    from service.settings import Settings

    given = {"host": args.host, "port": args.port, "workers": args.workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    serve(Settings(**overrides))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from model.parsers.nb201 import NB201_NUM_CELLS
    from training.splits import write_split

    n_total = NB201_NUM_CELLS if args.space == "nb201" else 5000  # HELP's FBNet and OFA tables: 5,000 networks each
    for seed in args.seeds:
        print(write_split(n_total, args.n_train, args.n_val, seed, args.space))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.run import train_run
    from training.splits import split_path
    from training.targets import TARGET_GROUPS, space_of
    from training.trainer import TrainConfig

    targets = args.targets or list(TARGET_GROUPS[args.target_group])
    split = args.split or str(split_path(args.n_train, args.n_val, args.seed, space_of(targets)))
    network = {"d_model": args.d_model, "n_layers": args.layers, "n_heads": args.heads, "node_sum": args.node_sum}
    pretrained = None
    if args.pretrain_steps > 0:
        import torch

        from training.data import load_dataset
        from training.pretrain import pretrain_encoder

        torch.set_num_threads(args.threads)  # pre-training too runs on --threads (the trainer sets it only after)

        encoder = Path(args.run_dir) / "pretrained_encoder.pt"
        pretrained = str(pretrain_encoder(load_dataset(targets), network, encoder, steps=args.pretrain_steps, seed=args.seed))
    cfg = TrainConfig(
        targets=targets,
        split=split,
        seed=args.seed,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        augment=not args.no_augment,
        augment_until=args.augment_until,
        consistency_weight=0.0 if args.no_consistency else args.consistency_weight,
        huber_delta=args.huber_delta,
        threads=args.threads,
        network=network,
        pretrained=pretrained,
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
    from training.export import export_run, select_on_validation

    run_dir, candidates = select_on_validation([Path(r) for r in args.run_dir])
    onnx_path, card_path = export_run(run_dir, Path(args.out), args.name, args.version, args.priority, candidates)
    if len(candidates) > 1:
        print(f"chose {run_dir} on validation: " + ", ".join(f"{c['run']} {c['best_val_score']:.4f}" for c in candidates))
    print(f"wrote {onnx_path} and {card_path}")
    return 0


def _architecture_arg(text: str) -> dict:
    if Path(text).is_file():
        text = Path(text).read_text()
    return json.loads(text) if text.lstrip().startswith("{") else {"space": "nb201", "arch": text.strip()}


def _report(exc: Exception, lines: list[int] | None = None) -> int:
    """Print an API / input error as ``error: <code>: <message>`` on stderr; exit status 2."""
    from archcast.rank import locate

    code = getattr(exc, "code", "invalid_input")
    message = getattr(exc, "message", str(exc))
    print(f"error: {code}: {locate(message, lines) if lines else message}", file=sys.stderr)
    return 2


def _api_errors() -> tuple[type[Exception], ...]:
    from archcast.client import ArchCastError
    from model.errors import ArchitectureError
    from service.errors import ServiceError

    return ArchCastError, ServiceError, ArchitectureError


def _onnx_prediction(args: argparse.Namespace) -> dict:
    """The ONNX latency response for ``args.model`` (a .onnx file), in-process or through ``args.url``."""
    data = Path(args.model).read_bytes()
    shape = {
        "batch": args.batch,
        "resolution": args.resolution,
        "sequence_length": args.sequence_length,
        "past_length": args.past_length,
    }
    chosen = {"predictor": args.predictor, "device": args.device, "breakdown": args.breakdown}
    if args.url:
        from archcast.client import Client

        with Client(args.url) as client:
            return client.predict_onnx(data, weight_free=not args.send_weights, **shape, **chosen)
    from service.local import predict_onnx_local

    return predict_onnx_local(data, **shape, **chosen)


def _print_breakdown(body: dict, op_types: int = 8) -> None:
    """Where the predicted time goes, as a short table (``--breakdown``)."""
    lines = ["op type              nodes        ms   share  compute  memory  per-node"]
    for row in body["breakdown"]["by_op_type"][:op_types]:
        lines.append(
            f"{row['op_type'][:20]:20s} {row['nodes']:5d} {row['ms']:9.3f} {100 * row['share']:6.1f} % "
            f"{100 * row['compute']:6.0f} % {100 * row['memory']:5.0f} % {100 * row['per_node']:7.0f} %"
        )
    print("\n".join(lines))


def _cmd_predict(args: argparse.Namespace) -> int:
    if args.architecture.endswith(".onnx"):
        args.model = args.architecture
        try:
            body = _onnx_prediction(args)
        except (*_api_errors(), OSError) as exc:
            return _report(exc)
        print(json.dumps(body, indent=1))
        return 0
    architecture = _architecture_arg(args.architecture)
    try:
        if args.url:
            from archcast.client import Client

            with Client(args.url) as client:
                body = client.predict_response([architecture], args.targets, args.predictor)
        else:
            from service.predictor import predict_local

            body = predict_local(architecture, args.targets, args.predictor)
    except _api_errors() as exc:
        return _report(exc)
    print(json.dumps(body, indent=1))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """CI latency gate: exit 0 within budget, 1 over it, 2 on bad input or an unreachable service."""
    try:
        body = _onnx_prediction(args)
    except (*_api_errors(), OSError) as exc:
        return _report(exc)
    value, std = body["latency_ms"]["value"], body["latency_ms"]["std"]
    bound = value + args.sigmas * std
    verdict = "PASS" if bound <= args.max_latency_ms else "FAIL"
    margin = f" + {args.sigmas} x std {std:.2f}" if args.sigmas else ""
    print(
        f"{verdict}: {args.model} predicted {value:.2f} ms (std {std:.2f}){margin} on {body['device']} "
        f"at batch {body['batch']}, resolution {body['resolution']}, sequence length {body.get('sequence_length', 128)}; "
        f"budget {args.max_latency_ms} ms "
        f"({body['cost']['flops'] / 1e9:.2f} GFLOPs, {body['cost']['params'] / 1e6:.2f} M params, {body['cost']['nodes']} ops)"
    )
    if args.breakdown:
        _print_breakdown(body)
    for warning in body.get("warnings", []):  # outside the predictor's training networks: the figure extrapolates
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if verdict == "PASS" else 1


def _onnx_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=1, help="ONNX models: batch size for a symbolic batch dimension")
    parser.add_argument("--resolution", type=int, default=224, help="ONNX models: input resolution for symbolic image dims")
    parser.add_argument(
        "--sequence-length", type=int, default=128, help="ONNX models: length for symbolic dims of 2-D / 3-D inputs"
    )
    parser.add_argument(
        "--past-length", type=int, default=128, help="ONNX models: KV-cache length for dims named past_sequence_length"
    )
    parser.add_argument("--device", help="ONNX models: device to predict for, e.g. cpu-ort-1t (default: the loaded one)")
    parser.add_argument(
        "--breakdown", action="store_true", help="ONNX models: also say where the predicted time goes (per op type, top nodes)"
    )
    _send_weights_option(parser)


def _send_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--send-weights",
        action="store_true",
        help="with --url: upload ONNX models whole (default: weight-free copies, the same answer from kilobytes)",
    )


def _cmd_rank(args: argparse.Namespace) -> int:
    from archcast.rank import RankInputError, format_table, predict_all, read_architectures, top_k

    try:
        architectures, lines = read_architectures(Path(args.file))
    except (OSError, RankInputError) as exc:
        return _report(exc)
    try:
        results = predict_all(architectures, args.target, args.url, args.predictor)
    except _api_errors() as exc:
        return _report(exc, lines)
    chosen = top_k(results, args.target, args.top, args.ascending)
    print(format_table(architectures, results, args.target, chosen))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """Few-shot calibration of a new device; exit 2 on bad input."""
    import time

    from archcast.calibrate import calibrate_local, is_network_file, read_measurements
    from archcast.rank import RankInputError

    started = time.perf_counter()
    try:
        if is_network_file(Path(args.measurements)):
            return _calibrate_network(args, started)
        pairs, lines = read_measurements(Path(args.measurements))
    except (OSError, RankInputError) as exc:
        return _report(exc)
    try:
        if args.url:
            from archcast.client import Client

            with Client(args.url) as client:
                summary = client.calibrate(args.device, pairs, args.base, args.method)
            where = f"loaded by the service at {args.url}" + (" and persisted" if summary.get("persisted") else "")
        else:
            summary, onnx_path = calibrate_local(
                args.device, pairs, args.base, args.method, Path(args.out) if args.out else None
            )
            where = f"wrote {onnx_path} and its card; serve with ARCHCAST_CALIBRATION_DIR={onnx_path.parent}"
    except _api_errors() as exc:
        return _report(exc, lines)
    print(json.dumps(summary, indent=1))
    print(
        f"{summary['predictor']}: {summary['n_samples']} measurements, method {summary['method']}, leave-one-out MAPE "
        f"{summary['loo_mape']:.1f} %; {where} ({time.perf_counter() - started:.1f} s)"
    )
    return 0


def _calibrate_network(args: argparse.Namespace, started: float) -> int:
    """``archcast calibrate`` on measured ONNX models: a whole-network predictor for the new device, fitted in-process
    or, with ``--url``, by a running service the models are uploaded to."""
    import time

    from archcast.calibrate import calibrate_network_local, read_network_measurements
    from archcast.rank import RankInputError

    try:
        if args.url:  # the models are uploaded, the fit made and served there
            from archcast.client import Client

            with Client(args.url) as client:
                summary = client.calibrate_onnx(
                    args.device, Path(args.measurements), args.base, args.method, weight_free=not args.send_weights
                )
            persisted = " and persisted to its ARCHCAST_CALIBRATION_DIR" if summary.get("persisted") else ""
            where = f"loaded by the service at {args.url}{persisted}; use it with POST /v1/predict/onnx?device={args.device}"
        else:
            measurements = read_network_measurements(Path(args.measurements))
            summary, onnx_path = calibrate_network_local(
                args.device, measurements, args.base, args.method, Path(args.out) if args.out else None
            )
            where = (
                f"wrote {onnx_path} and its card; use it with --device {args.device} and "
                f"ARCHCAST_CALIBRATION_DIR={onnx_path.parent}"
            )
    except (OSError, RankInputError, *_api_errors()) as exc:
        return _report(exc)
    print(json.dumps(summary, indent=1))
    print(
        f"{summary['predictor']}: {summary['n_samples']} measured ONNX models, base {summary['base']}, map "
        f"{summary['method']}, leave-one-out MAPE "
        f"{summary['loo_mape']:.1f} %; "
        f"{where} ({time.perf_counter() - started:.1f} s)"
    )
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    """Measure ONNX models on this machine into a JSON-lines file ``archcast calibrate`` reads; exit 2 on bad input."""
    import statistics

    from archcast.measure import measure_models
    from model.onnx_graph import ParseOptions
    from training.netgen.measure import MeasureSettings

    if args.passes < 1 or args.threads < 1 or args.min_time < 0:
        print("error: invalid_input: --passes and --threads must be >= 1, --min-time >= 0", file=sys.stderr)
        return 2
    models = [Path(m) for m in args.models]
    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        print(f"error: invalid_input: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    options = ParseOptions(
        batch=args.batch, resolution=args.resolution, sequence_length=args.sequence_length, past_length=args.past_length
    )
    settings = MeasureSettings(threads=args.threads, min_time_s=args.min_time)
    try:
        records = measure_models(models, Path(args.out), options, settings, passes=args.passes)
    except _api_errors() as exc:
        return _report(exc)
    except Exception as exc:  # noqa: BLE001 - onnxruntime refusing a model is bad input here, not a crash
        print(f"error: measure_failed: {exc}", file=sys.stderr)
        return 2
    for record in records:
        print(f"{record['latency_ms']:10.3f} ms  (passes differ {record['spread_pct']:4.1f} %)  {record['onnx']}")
    if records:
        spread = statistics.median(r["spread_pct"] for r in records)
        print(f"{len(records)} model(s) measured into {args.out}; median pass-to-pass difference {spread:.1f} %")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the prediction service (settings from ARCHCAST_* environment variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (default: ARCHCAST_WORKERS or 1)")
    serve.set_defaults(func=_cmd_serve)

    split = sub.add_parser("split", help="write NB201 split files (train / val / test disjoint)")
    split.add_argument("--n-train", type=int, default=1563)
    split.add_argument("--n-val", type=int, default=200)
    split.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    split.add_argument("--space", choices=["nb201", "fbnet", "ofa"], default="nb201")
    split.set_defaults(func=_cmd_split)

    train = sub.add_parser("train", help="train a fusion transformer on NB201 (resumes if the run directory has a checkpoint)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--split", help="split file; default: training/splits/nb201_train{N}_val{V}_seed{S}.json")
    train.add_argument("--n-train", type=int, default=1563)
    train.add_argument("--n-val", type=int, default=200)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--targets", nargs="+", help="target names (see training/targets.py); overrides --target-group")
    train.add_argument(
        "--target-group",
        default="default",
        choices=["default", "accuracy", "latency", "fewshot_source", "help_meta_train", "all", "fbnet_latency", "ofa_latency"],
        help="default: nb201-v1 1.2.0's 10 targets (3 accuracies + 7 HELP latencies; nb201-help-v1's network); accuracy: "
        "nb201-v1 1.3.0's 6 (3 accuracies after 200 and 12 epochs); latency: all 46 latency settings; "
        "fewshot_source: latency minus HELP's "
        "six test devices; help_meta_train: HELP's nine meta-training devices; all: every NB201 target; "
        "fbnet_latency / ofa_latency: every device of HELP's FBNet / OFA table",
    )
    train.add_argument("--epochs", type=int, default=200)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--d-model", type=int, default=128)
    train.add_argument("--layers", type=int, default=4)
    train.add_argument("--heads", type=int, default=4)
    train.add_argument(
        "--node-sum",
        action="store_true",
        help="add a per-node term summed over the nodes to the fusion readout (targets close to a sum over layers, "
        "e.g. FBNet latency; benchmarks/results/quality/network_spaces.md)",
    )
    train.add_argument("--consistency-weight", type=float, default=0.5)
    train.add_argument(
        "--huber-delta",
        type=float,
        default=None,
        help="train on the Huber form of the squared error beyond this many normalised units (0.1: chosen on "
        "validation for NB201 latency at 20-900 cells, benchmarks/results/quality/latency_pretraining_sizes.md); "
        "default: the squared error",
    )
    train.add_argument("--no-augment", action="store_true", help="train on the canonical order only")
    train.add_argument("--no-consistency", action="store_true", help="drop the architecture-consistency loss")
    train.add_argument(
        "--augment-until",
        type=float,
        default=1.0,
        help="share of the epochs with augmentation / consistency; the rest train on the canonical order (0.5: the "
        "recipe of the quality benchmarks)",
    )
    train.add_argument("--threads", type=int, default=2)
    train.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="first pre-train the encoder on every graph of the table (NB201, FBNet, OFA) or on 20,000 random cells of "
        "the space (NB101, DARTS), structural properties only, no labels, for this many steps; helps most with few "
        "labels (benchmarks/results/quality/accuracy_sizes.md; default 0: off)",
    )
    train.set_defaults(func=_cmd_train)

    calibrate = sub.add_parser(
        "calibrate", help="fit a latency predictor for a new device from 10-50 measured architectures (few-shot)"
    )
    calibrate.add_argument("--device", required=True, help="new device name (lower case, digits, '_', '.', '-')")
    calibrate.add_argument(
        "--measurements",
        required=True,
        help="JSON lines {architecture, latency_ms} or CSV with columns arch,latency_ms (cell predictors), or JSON lines "
        "{onnx, latency_ms} from `archcast measure` (a whole-network predictor)",
    )
    calibrate.add_argument(
        "--base",
        help="predictor to calibrate (cells: default ARCHCAST_CALIBRATION_BASE; measured ONNX models: default the shipped "
        "network predictor whose one-factor fit has the lowest leave-one-out error)",
    )
    calibrate.add_argument(
        "--method",
        choices=["auto", "scale", "single", "ridge"],
        default="auto",
        help="scale: one source times one factor; single: one source with a slope (cells: the best base device; ONNX: the "
        "base latency); ridge: all (ONNX: latency, MACs, memory traffic); auto: the lowest leave-one-out error (cells: "
        "single or ridge; ONNX: scale or single, from 20 models on also ridge)",
    )
    calibrate.add_argument("--out", help="output directory (default: ARCHCAST_CALIBRATION_DIR or calibrated/)")
    calibrate.add_argument("--url", help="calibrate through a running service instead of in-process")
    _send_weights_option(calibrate)
    calibrate.set_defaults(func=_cmd_calibrate)

    measure = sub.add_parser(
        "measure", help="measure ONNX models' latency on this machine (the training labels' protocol) for calibrate"
    )
    measure.add_argument("models", nargs="+", help="ONNX model files")
    measure.add_argument("--out", required=True, help="JSON-lines file to append to (models already in it are skipped)")
    measure.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1: cpu-ort-1t)")
    measure.add_argument("--passes", type=int, default=2, help="passes in shuffled orders; label = mean of their minima")
    measure.add_argument("--min-time", type=float, default=0.3, help="least seconds of timed runs per model and pass")
    measure.add_argument("--batch", type=int, default=1, help="batch size for a symbolic batch dimension")
    measure.add_argument("--resolution", type=int, default=224, help="input resolution for symbolic image dimensions")
    measure.add_argument("--sequence-length", type=int, default=128, help="length for symbolic dims of 2-D / 3-D inputs")
    measure.add_argument("--past-length", type=int, default=128, help="KV-cache length for dims named past_sequence_length")
    measure.set_defaults(func=_cmd_measure)

    evaluate = sub.add_parser("evaluate", help="test-split metrics, markdown table and scatter plot of a run")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--out", help="output directory (default: the run directory)")
    evaluate.set_defaults(func=_cmd_evaluate)

    export = sub.add_parser("export", help="export a run to ONNX + model card")
    export.add_argument(
        "--run-dir", required=True, nargs="+", help="one run, or several on one split: the best validation score is exported"
    )
    export.add_argument("--out", default="model/predictors")
    export.add_argument("--name", default="nb201-v1")
    export.add_argument("--version", default="1.0.0")
    export.add_argument(
        "--priority", type=int, default=0, help="default-choice rank when a request names no predictor (highest first)"
    )
    export.set_defaults(func=_cmd_export)

    predict = sub.add_parser("predict", help="predict one architecture, in-process or through a running service (--url)")
    predict.add_argument(
        "architecture", help="an NB201 arch string, a JSON architecture object, a file holding one, or an ONNX model (*.onnx)"
    )
    predict.add_argument("--targets", nargs="+")
    predict.add_argument("--predictor", help="predictor name (default: the loaded one supporting the space)")
    predict.add_argument("--url", help="service base URL, e.g. http://127.0.0.1:8000 (default: predict in-process)")
    _onnx_options(predict)
    predict.set_defaults(func=_cmd_predict)

    check = sub.add_parser("check", help="CI gate: exit 1 when an ONNX model's predicted latency is over budget")
    check.add_argument("model", help="ONNX model file")
    check.add_argument("--max-latency-ms", type=float, required=True, help="latency budget in milliseconds")
    check.add_argument("--sigmas", type=float, default=0.0, help="compare value + K x std with the budget (default 0)")
    check.add_argument("--predictor", help="network predictor name (default: the one for --device)")
    check.add_argument("--url", help="service base URL (default: predict in-process)")
    _onnx_options(check)
    check.set_defaults(func=_cmd_check)

    rank = sub.add_parser("rank", help="predict every architecture of a JSON-lines file and print the top K by one target")
    rank.add_argument("file", help="one architecture JSON object or NB201 arch string per line (# comments)")
    rank.add_argument("--target", default="cifar10_test_acc", help="target to rank by (default: cifar10_test_acc)")
    rank.add_argument("--top", type=int, default=10, help="how many to print (default: 10)")
    rank.add_argument("--ascending", action="store_true", help="smallest first (e.g. for latency targets)")
    rank.add_argument("--predictor", help="predictor name (default: the loaded one supporting the spaces)")
    rank.add_argument("--url", help="service base URL (default: predict in-process)")
    rank.set_defaults(func=_cmd_rank)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
