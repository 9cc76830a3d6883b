"""examples/nas_evolution.py runs end to end against a REAL server with the shipped predictor (a small query budget)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
from live_server import LiveServer

from archcast.client import Client
from model.card import PREDICTOR_DIR
from service.app import create_app
from service.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nas_evolution.py"
pytestmark = pytest.mark.skipif(
    not sorted(PREDICTOR_DIR.glob("*.card.json")), reason=f"no shipped predictor: {PREDICTOR_DIR}/*.card.json is absent"
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nas_evolution", EXAMPLE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_mutation_changes_exactly_one_edge() -> None:
    example = load_example()
    rng = random.Random(0)
    ops = ("none",) * 6
    for _ in range(50):
        child = example.mutate(ops, rng)
        assert sum(a != b for a, b in zip(ops, child, strict=True)) == 1
        ops = child


def test_evolution_against_the_service(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    with LiveServer(create_app(Settings(predictor_dir=PREDICTOR_DIR, providers="cpu"))) as live:
        with Client(live.url) as client:
            evaluator = example.Evaluator(client, budget_ms=10.0)
            history = example.regularised_evolution(evaluator, queries=80, population_size=20, sample_size=5, seed=1)
        assert evaluator.queries == 80 and [q for q, _ in history] == list(range(1, 81))
        best = [b.accuracy for _, b in history if b is not None]
        assert best == sorted(best)  # the best feasible never gets worse
        assert all(b.latency <= 10.0 for _, b in history if b is not None)
        assert example.main(["--url", live.url, "--queries", "60", "--population", "20", "--sample", "5"]) == 0
    out = capsys.readouterr().out
    assert "60 queries" in out and "best found: |" in out
