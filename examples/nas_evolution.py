"""Regularised evolution (Real et al. 2019) over NAS-Bench-201 with a running ArchCast service as the only evaluator.

Population 50, tournament sample 10, aging (the oldest member dies each cycle); a child is its tournament winner with
one of the 6 edge ops changed. Maximises predicted ``cifar10_test_acc`` subject to predicted ``latency_pixel3_ms`` <=
``--budget-ms``; every evaluation is one query to ``POST /v1/predict`` (through ``archcast.client.Client``). At the end
it reports the best architecture found and, when the NB201 tables are available (``model.tables``), its TRUE accuracy
and latency and the true-best feasible accuracy of the whole table.

    archcast serve &   # or: docker compose up
    python examples/nas_evolution.py --url http://127.0.0.1:8000 --budget-ms 10 --queries 1000
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from archcast.client import ArchCastError, Client

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
ACCURACY = "cifar10_test_acc"
LATENCY = "latency_pixel3_ms"
CHECKPOINTS = (50, 100, 200, 500, 1000, 2000, 5000)


def arch_string(ops: Sequence[str]) -> str:
    """The NB201 arch string of the 6 edge ops (edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)."""
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


@dataclass(frozen=True)
class Candidate:
    ops: tuple[str, ...]
    accuracy: float  # predicted, %
    latency: float  # predicted, ms

    @property
    def arch(self) -> str:
        return arch_string(self.ops)


class Evaluator:
    """Predicted accuracy and latency from the service; counts queries (one per architecture evaluated)."""

    def __init__(self, client: Client, budget_ms: float) -> None:
        self.client = client
        self.budget_ms = budget_ms
        self.queries = 0

    def evaluate(self, population: Sequence[tuple[str, ...]]) -> list[Candidate]:
        results = self.client.predict([arch_string(ops) for ops in population], targets=[ACCURACY, LATENCY])
        self.queries += len(population)
        return [Candidate(ops, r["predictions"][ACCURACY]["value"], r["predictions"][LATENCY]["value"])
                for ops, r in zip(population, results, strict=True)]

    def fitness(self, candidate: Candidate) -> tuple[bool, float]:
        """Feasible candidates beat infeasible ones; then higher predicted accuracy wins."""
        return candidate.latency <= self.budget_ms, candidate.accuracy


def mutate(ops: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
    edge = rng.randrange(len(ops))
    return ops[:edge] + (rng.choice([op for op in OPS if op != ops[edge]]),) + ops[edge + 1 :]


def regularised_evolution(
    evaluator: Evaluator, queries: int, population_size: int = 50, sample_size: int = 10, seed: int = 0
) -> list[tuple[int, Candidate | None]]:
    """Run until ``queries`` evaluations; returns (queries so far, best feasible candidate) after every evaluation."""
    rng = random.Random(seed)
    initial = [tuple(rng.choice(OPS) for _ in range(6)) for _ in range(min(population_size, queries))]
    population = collections.deque(evaluator.evaluate(initial))  # one batched request for the initial population
    history: list[tuple[int, Candidate | None]] = []
    best: Candidate | None = None
    for count, candidate in enumerate(population, start=1):
        best = _better(evaluator, best, candidate)
        history.append((count, best))
    while evaluator.queries < queries:
        tournament = rng.sample(list(population), min(sample_size, len(population)))
        parent = max(tournament, key=evaluator.fitness)
        (child,) = evaluator.evaluate([mutate(parent.ops, rng)])
        population.append(child)
        population.popleft()  # aging: the oldest dies, not the worst
        best = _better(evaluator, best, child)
        history.append((evaluator.queries, best))
    return history


def _better(evaluator: Evaluator, best: Candidate | None, candidate: Candidate) -> Candidate | None:
    if candidate.latency > evaluator.budget_ms:
        return best
    return candidate if best is None or candidate.accuracy > best.accuracy else best


def true_tables() -> tuple[dict[str, float], dict[str, float]] | None:
    """(true CIFAR-10 test accuracy, true Pixel 3 latency) by arch string, or None without the NB201 tables."""
    try:
        from model.tables import read_csv_table

        accuracy = read_csv_table("nb201/accuracy.csv.gz")
        latency = read_csv_table("nb201/latency_help_ms.csv.gz")
    except (ImportError, FileNotFoundError, OSError) as exc:
        print(f"(NB201 tables not available, true values skipped: {exc})")
        return None
    return (dict(zip(accuracy["arch_str"], map(float, accuracy["cifar10_test_200ep"]), strict=True)),
            dict(zip(latency["arch_str"], map(float, latency["pixel3"]), strict=True)))


def report(history: list[tuple[int, Candidate | None]], budget_ms: float, tables: tuple[dict, dict] | None) -> None:
    total = history[-1][0]
    marks = sorted({q for q in CHECKPOINTS if q < total} | {total})
    print(f"\n{'queries':>7}  {'best predicted acc':>18}  {'its predicted latency':>21}  {'its TRUE acc':>12}")
    for mark in marks:
        best = next((b for q, b in reversed(history) if q <= mark), None)
        if best is None:
            print(f"{mark:>7}  {'(none feasible)':>18}")
            continue
        true = f"{tables[0][best.arch]:.2f} %" if tables else "n/a"
        print(f"{mark:>7}  {best.accuracy:>16.2f} %  {best.latency:>18.2f} ms  {true:>12}")
    best = history[-1][1]
    if best is None:
        print(f"\nno architecture with predicted {LATENCY} <= {budget_ms} ms was found")
        return
    print(f"\nbest found: {best.arch}")
    print(f"  predicted: {ACCURACY} {best.accuracy:.2f} %, {LATENCY} {best.latency:.2f} ms (budget {budget_ms} ms)")
    if tables:
        accuracy, latency = tables
        ok = "within" if latency[best.arch] <= budget_ms else "OVER"
        print(f"  true:      {ACCURACY} {accuracy[best.arch]:.2f} %, {LATENCY} {latency[best.arch]:.2f} ms ({ok} budget)")
        feasible = [arch for arch in accuracy if latency.get(arch, float("inf")) <= budget_ms]
        top = max(feasible, key=accuracy.__getitem__)
        print(f"  true-best feasible in the table: {accuracy[top]:.2f} % ({top}); "
              f"gap {accuracy[top] - accuracy[best.arch]:.2f} points")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="ArchCast service base URL")
    parser.add_argument("--budget-ms", type=float, default=10.0, help=f"largest predicted {LATENCY} allowed")
    parser.add_argument("--queries", type=int, default=1000, help="architectures evaluated in all")
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with Client(args.url) as client:
        if not client.ready():
            print(f"the service at {args.url} is not ready (start it with `archcast serve`)", file=sys.stderr)
            return 1
        evaluator = Evaluator(client, args.budget_ms)
        started = time.perf_counter()
        try:
            history = regularised_evolution(evaluator, args.queries, args.population, args.sample, args.seed)
        except ArchCastError as exc:
            print(f"the service refused a query: {exc}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - started
    print(f"regularised evolution: {evaluator.queries} queries in {seconds:.1f} s "
          f"({evaluator.queries / seconds:.0f} queries/s), population {args.population}, sample {args.sample}")
    report(history, args.budget_ms, true_tables())
    return 0


if __name__ == "__main__":
    sys.exit(main())
