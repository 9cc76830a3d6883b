"""Where the time of one ``POST /v1/predict`` of 1024 NB201 cells goes, stage by stage (no HTTP, no server).

Calls the pipeline's own functions on the shipped predictor, each stage timed separately, median of ``--repeats``:
request parsing (JSON + pydantic), parse + canonicalize (``plan_request`` with the NB201 parse memo emptied first),
cache lookup + store (in-process LRU, all misses), tokenize, onnxruntime run, response serialisation (result dicts
with value, unit and std + orjson, as the route does). Beside them: the plan with a warm parse memo (every cell seen
before), and the serialisation the route did before orjson (``PredictResponse`` validation + pydantic-core JSON, as
FastAPI does with a response_model). Writes ``benchmarks/results/stage_profile.{json,md}``.

    python -m benchmarks.stage_profile [--cells 1024] [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from benchmarks.machine import describe_machine
from benchmarks.service_throughput import random_cells
from model.card import PREDICTOR_DIR
from model.tokenizer import tokenize_graphs
from service.cache import LRUCache
from service.cpus import available_cpus
from service.pipeline import _prepare_nb201, plan_request
from service.pipeline import response_body as build_response
from service.predictor import load_registry
from service.schemas import PredictRequest, PredictResponse
from service.settings import Settings

RESULTS = Path(__file__).parent / "results"


def median_seconds(step: Callable[[], Any], repeats: int, before: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``step`` over ``repeats`` calls (``before`` runs untimed ahead of each)."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def profile(cells: int, repeats: int) -> dict[str, Any]:
    settings = Settings(providers="cpu")
    registry = load_registry(PREDICTOR_DIR, "cpu", settings.ort_threads)
    body = json.dumps({"architectures": [{"space": "nb201", "arch": a} for a in random_cells(cells, seed=1)]}).encode()
    request = PredictRequest.model_validate(json.loads(body))

    def plan() -> Any:
        return plan_request(request, registry, max_batch=cells, max_nodes=settings.max_nodes, data_dir=None)

    planned = plan()
    predictor, card = planned.predictor, planned.predictor.card
    keys = [f"{card.name}@{card.version}:{item.key}" for item in planned.prepared]
    graphs = [item.graph for item in planned.prepared]
    batch = tokenize_graphs(graphs)
    rows = predictor.run(batch)
    values = {key: dict(zip(card.target_names, map(float, row), strict=True)) for key, row in zip(keys, rows, strict=True)}
    loop = asyncio.new_event_loop()

    def cache_round_trip() -> None:
        cache = LRUCache(100_000)
        loop.run_until_complete(cache.get_many(keys))
        loop.run_until_complete(cache.set_many(values))

    adapter = TypeAdapter(PredictResponse)

    def response_body() -> dict:
        return build_response(planned, [keys], values)

    def serialise() -> bytes:
        return orjson.dumps(response_body())

    def serialise_pydantic() -> bytes:
        return adapter.dump_json(adapter.validate_python(response_body()))

    stages = {
        "request parsing (JSON + pydantic)": median_seconds(lambda: PredictRequest.model_validate(json.loads(body)), repeats),
        "parse + canonicalize (memo emptied)": median_seconds(plan, repeats, before=_prepare_nb201.cache_clear),
        "cache lookup + store (LRU, misses)": median_seconds(cache_round_trip, repeats),
        "tokenize": median_seconds(lambda: tokenize_graphs(graphs), repeats),
        "onnxruntime run": median_seconds(lambda: predictor.run(batch), repeats),
        "response serialisation": median_seconds(serialise, repeats),
    }
    pydantic_seconds = median_seconds(serialise_pydantic, repeats)
    plan()  # fill the memo again
    memo_hit = median_seconds(plan, repeats)
    loop.close()
    total = sum(stages.values())
    return {
        "stages": [{"stage": name, "ms": seconds * 1000, "share": seconds / total} for name, seconds in stages.items()],
        "total_ms": total * 1000,
        "plan_with_warm_memo_ms": memo_hit * 1000,
        "serialise_pydantic_ms": pydantic_seconds * 1000,
        "predictor": f"{card.name} {card.version} on {predictor.provider}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()

    result = profile(args.cells, args.repeats)
    meta = {
        "machine": describe_machine(),
        "predictor": result.pop("predictor"),
        "ort_threads": available_cpus(),
        "command": " ".join(["python -m benchmarks.stage_profile", *sys.argv[1:]]),
        "setup": f"one request of {args.cells} distinct NB201 cells, each stage timed alone, median of {args.repeats}",
    }
    lines = [
        f"# Time per stage of one POST /v1/predict of {args.cells} NB201 cells", "",
        f"Machine: {meta['machine']}. Predictor: {meta['predictor']}. ORT intra-op threads: {meta['ort_threads']}.",
        f"Command: `{meta['command']}`. Setup: {meta['setup']}.", "",
        "| stage | ms | share |", "|---|---|---|",
        *[f"| {s['stage']} | {s['ms']:.2f} | {100 * s['share']:.1f} % |" for s in result["stages"]],
        f"| total | {result['total_ms']:.2f} | 100 % |", "",
        f"With a warm NB201 parse memo (every cell seen before), parse + canonicalize takes "
        f"{result['plan_with_warm_memo_ms']:.2f} ms.",
        f"Serialising through pydantic instead (validation + pydantic-core JSON, the route before orjson): "
        f"{result['serialise_pydantic_ms']:.2f} ms.",
        "HTTP, the event loop and thread-pool hops are not included (see service_throughput for end-to-end numbers).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stage_profile.json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    text = "\n".join(lines) + "\n"
    (args.out / "stage_profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
