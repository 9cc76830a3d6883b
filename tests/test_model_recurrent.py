"""Recurrent lowering (tokenizer 6): an LSTM / GRU / RNN becomes the products onnxruntime runs, costs preserved."""

from __future__ import annotations

import pytest
from onnx_fixtures import recurrent_model

from model.network_tokenizer import (
    NETWORK_TOKEN_DIM,
    gemm_view,
    graph_for_version,
    tokenize_networks,
)
from model.onnx_graph import parse_onnx
from model.recurrent import lower_recurrent


def recurrent_net(op: str, gates: int, direction: str, dirs: int):
    return parse_onnx(recurrent_model(op, gates, direction, dirs).SerializeToString())


@pytest.mark.parametrize(
    ("op", "gates", "direction", "dirs"),
    [("LSTM", 4, "forward", 1), ("GRU", 3, "bidirectional", 2), ("RNN", 1, "reverse", 1)],
)
def test_a_recurrent_node_becomes_its_input_product_its_step_products_and_its_gates(
    op: str, gates: int, direction: str, dirs: int
) -> None:
    graph = recurrent_net(op, gates, direction, dirs)
    lowered = lower_recurrent(graph)
    assert [n.op_type for n in graph.nodes] == ["Relu", op, "Relu"]
    assert [n.op_type for n in lowered.nodes] == ["Relu", "MatMul", "MatMul", op, "Relu"]
    # a chain: Relu -> input product -> step products -> gates -> the Relu that read the recurrent node
    assert [n.inputs for n in lowered.nodes] == [(), (0,), (1,), (2,), (3,)]
    projection, step, gate = lowered.nodes[1:4]
    # every time step's input (5 steps x 2 rows) times W (3 -> dirs * gates * 4) in one product
    assert gemm_view(projection) == (1.0, 10.0, float(dirs * gates * 4), 3.0)
    # then dirs x 5 products, one after another, of the 2-row hidden state with R (4 -> gates * 4)
    assert gemm_view(step) == (float(dirs * 5), 2.0, float(gates * 4), 4.0)
    assert gemm_view(gate) == (0.0, 0.0, 0.0, 0.0)
    assert gate.output_shapes == graph.nodes[1].output_shapes
    # the costs add up to the recurrent node's: same MACs, FLOPs and parameters
    original = graph.nodes[1].cost
    assert projection.cost.macs + step.cost.macs == original.macs
    assert projection.cost.flops + step.cost.flops + gate.cost.flops == pytest.approx(original.flops)
    assert projection.cost.params + step.cost.params + gate.cost.params == original.params
    for key in ("flops", "macs", "params"):
        assert lowered.totals()[key] == pytest.approx(graph.totals()[key])


def test_graphs_without_recurrent_ops_are_left_as_they_are() -> None:
    from onnx_fixtures import conv_net

    graph = parse_onnx(conv_net().SerializeToString())
    assert lower_recurrent(graph) is graph
    assert graph_for_version(graph, "6") is graph


def test_tokenizer_6_lowers_and_earlier_versions_read_the_graph_as_exported() -> None:
    graph = recurrent_net("LSTM", 4, "forward", 1)
    assert graph_for_version(graph, "5") is graph and graph_for_version(graph, "3") is graph
    assert graph_for_version(graph, "6").n == graph.n + 2
    assert tokenize_networks([graph], version="5").tokens.shape == (1, 3, NETWORK_TOKEN_DIM)
    assert tokenize_networks([graph], version="6").tokens.shape == (1, 5, NETWORK_TOKEN_DIM)
    # the node limit bounds the exported graph, not what lowering adds
    assert tokenize_networks([graph], max_nodes=3, version="6").mask.sum() == 5
