"""Sequence families (LSTM / GRU models, transformer text encoders): reproducible specs, exports with token-id or
feature inputs that run, MACs that agree between torch and the ONNX cost model (recurrent ops included), and
recurrent ops that have their own tokenizer codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_samples import distinct, reproducible_samples, small_sample

from model.onnx_graph import ParseOptions, parse_onnx
from model.onnx_ops import ONNX_OPS, OTHER, onnx_op_code
from training.netgen.export import build_network, export_spec, export_with_input
from training.netgen.generate import count_macs
from training.netgen.measure import make_session, session_feed
from training.netgen.registry import SEQUENCE_FAMILY_MODULES, family


@pytest.mark.parametrize("name", SEQUENCE_FAMILY_MODULES)
def test_sequence_sampling_is_reproducible_and_varied(name: str) -> None:
    specs = reproducible_samples(name)
    assert distinct(specs) >= 18
    assert all(32 <= s["seq_len"] <= 512 for s in specs)


def _small(name: str) -> dict:
    return small_sample(name, 0.1e9)


@pytest.mark.parametrize("name", SEQUENCE_FAMILY_MODULES)
def test_a_sequence_sample_exports_runs_and_costs_as_in_torch(name: str) -> None:
    spec = _small(name)
    module = build_network(name, spec)
    data = export_spec(name, spec)
    session = make_session(data)
    feed = session_feed(session)
    (out,) = session.run(None, feed)
    assert out.shape[0] == 1 and out.shape[-1] in (spec["num_classes"], spec.get("vocab"))
    graph = parse_onnx(data, ParseOptions())
    assert graph.unknown_shapes == 0
    torch_macs = count_macs(module, family(name).example_input(spec))
    if name == "text":  # attention adds Q K^T and A V: 2 x depth x T^2 x D
        torch_macs += 2 * spec["depth"] * spec["seq_len"] ** 2 * spec["dim"]
    assert graph.totals()["macs"] == pytest.approx(torch_macs, rel=1e-9)


def test_token_inputs_are_fed_as_valid_ids() -> None:
    spec = {**_small("rnn"), "input": "tokens", "vocab": 1000, "embed": 64}
    session = make_session(export_spec("rnn", spec))
    (value,) = session_feed(session).values()
    assert value.dtype == np.int64 and value.shape == (1, spec["seq_len"]) and not value.any()


@pytest.mark.parametrize(("cell", "gates"), [("LSTM", 4), ("GRU", 3)])
def test_recurrent_macs_are_hand_counted_and_the_ops_have_their_own_codes(cell: str, gates: int) -> None:
    layer = getattr(torch.nn, cell)(24, 32, num_layers=2, batch_first=True, bidirectional=True)
    steps = 10
    by_hand = gates * 32 * (24 + 32) * 2 * steps + gates * 32 * (64 + 32) * 2 * steps
    assert count_macs(layer, torch.zeros(1, steps, 24)) == by_hand
    graph = parse_onnx(export_with_input(layer.eval(), torch.zeros(1, steps, 24)))
    recurrent = [n for n in graph.nodes if n.op_type == cell]
    assert len(recurrent) == 2 and sum(n.cost.macs for n in recurrent) == by_hand
    assert onnx_op_code(cell) == ONNX_OPS.index(cell) != ONNX_OPS.index(OTHER)
