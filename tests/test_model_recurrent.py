"""Recurrent lowering (tokenizer 6): an LSTM / GRU / RNN becomes the products onnxruntime runs, costs preserved;
tokenizer 9: its step product is one step's, repeated D*T times."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_fixtures import recurrent_model

from model.network_tokenizer import (
    NETWORK_TOKEN_DIM,
    REPEAT_COLUMN,
    TOKEN_WIDTHS,
    gemm_view,
    graph_for_version,
    log2_column,
    tokenize_networks,
    tokens_for_version,
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


@pytest.mark.parametrize(("op", "gates", "direction", "dirs"), [("LSTM", 4, "forward", 1), ("GRU", 3, "bidirectional", 2)])
def test_tokenizer_9_reads_the_step_product_as_one_step_with_r_as_its_weight_run_d_times_t_times(
    op: str, gates: int, direction: str, dirs: int
) -> None:
    graph = recurrent_net(op, gates, direction, dirs)
    batched, repeated = lower_recurrent(graph), lower_recurrent(graph, repeated_steps=True)
    step, one_step = batched.nodes[2], repeated.nodes[2]
    assert one_step.attrs == {"_weights": [1], "_repeat": dirs * 5}
    # one step: the 2-row hidden state times R (4 -> gates * 4), a product with a weight, like a classifier head
    assert gemm_view(one_step) == (1.0, 2.0, float(gates * 4), 4.0)
    assert one_step.input_shapes == ((2, 4), (4, gates * 4)) and one_step.output_shapes == ((2, gates * 4),)
    # the node keeps the totals of all steps; R (dirs x gates*4 x 4 floats) is read by every one of the 5 steps
    assert (one_step.cost.macs, one_step.cost.flops, one_step.cost.params) == (step.cost.macs, step.cost.flops, step.cost.params)
    r_bytes = 4.0 * dirs * gates * 4 * 4
    assert one_step.cost.memory_bytes - step.cost.memory_bytes == pytest.approx(r_bytes * 4)
    for key in ("flops", "macs", "params"):
        assert repeated.totals()[key] == pytest.approx(graph.totals()[key])
    assert [n.op_type for n in repeated.nodes] == [n.op_type for n in batched.nodes]
    assert [n.name for n in repeated.nodes] == [n.name for n in batched.nodes]


def test_tokenizer_9_tokens_carry_one_steps_numbers_and_the_repeat_count() -> None:
    graph = recurrent_net("GRU", 3, "bidirectional", 2)
    assert graph_for_version(graph, "9").nodes[2].attrs["_repeat"] == 10
    assert "_repeat" not in graph_for_version(graph, "7").nodes[2].attrs
    tokens = tokenize_networks([graph], version="9").tokens[0]
    assert 2.0 ** (16.0 * tokens[:, REPEAT_COLUMN]) == pytest.approx([1.0, 1.0, 10.0, 1.0, 1.0])
    step = graph_for_version(graph, "9").nodes[2]
    for name, total in (("flops", step.cost.flops), ("memory_bytes", step.cost.memory_bytes)):
        assert 2.0 ** (16.0 * tokens[2, log2_column(name)]) - 1 == pytest.approx(total / 10, rel=1e-5)
    # a version-7 predictor reads the graph and its tokens as before: batched view, no repeat column
    seven = tokens_for_version(tokenize_networks([graph], version="7").tokens, "7")[0]
    assert seven.shape == (5, TOKEN_WIDTHS["7"]) and TOKEN_WIDTHS["7"] == REPEAT_COLUMN
    assert not np.array_equal(seven[2], tokens[2, : TOKEN_WIDTHS["7"]])
    np.testing.assert_array_equal(seven[[0, 1, 3, 4]], tokens[[0, 1, 3, 4], : TOKEN_WIDTHS["7"]])
