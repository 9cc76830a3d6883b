"""Recurrent ops (LSTM / GRU / RNN) lowered to the matrix products onnxruntime actually runs, for tokenizers 6-9.

An exported ``LSTM`` is one node, and a predictor that never trained on one reads it through an op code it has no
weights for (leave-one-family-out on the sequence family missed by ~60 % whatever the method). Yet onnxruntime's CPU
kernel is three ordinary pieces of work: one matrix product of every time step's input with W (T*B rows x I by
I x D*G*H), then, step after step, a small product of the hidden state with R (B rows x H by H x G*H, D*T of them
in sequence), and the gate activations on every gate unit. ``lower_recurrent`` writes a graph's recurrent nodes as
those three nodes (two ``MatMul`` nodes whose GEMM views and costs say what they compute, and a gate node that keeps
the original op type), so their cost reads in the terms every other family taught: a 2-D product like a ViT's
linear layer, and a batched product of D*T one-row matrices. Costs add up to the original node's (``node_cost``):
the same MACs, FLOPs and parameters; the other nodes and edges are untouched.

What it bought (``benchmarks/results/onnx_latency_tokenizer6_5254.md``): in-domain, the sequence family's test MAPE
fell from 10.4 to 6.3 %. Held out, it still misses by ~60 % (``onnx_latency_lofo_rnn_tokenizer6.md``), read 2.3-2.5x
fast: no other family has a loop of small sequential products, so none teaches what each step costs.

Tokenizer 9 reads the step product as what each step runs: one matrix product of the B-row hidden state with its
direction's R (B x H by H x G*H, R marked as the node's weight), repeated D*T times inside the one kernel. The node
keeps the totals of all steps as its costs (MACs, FLOPs, and R read once per step, as onnxruntime reads it), carries
``_repeat`` = D*T, and its token carries one step's numbers plus log2 of that count (``model.network_tokenizer``),
which the whole-network readout adds to the node's compute and memory terms in log space, not to its per-node
overhead: one dispatch, D*T steps. Each step then reads like the one-row products with a weight that the classifier
heads and the decoders' projections teach. Held out of 21 families, 3 seeds (``benchmarks/results/
onnx_latency_epyc21_lofo_rnn_tokenizer9.md``), rnn's MAPE fell from 56.3 +- 0.6 % (tokenizer 7, the same splits) to
29.8 +- 5.8 % (trees 33.5 %), Spearman 0.989 -> 0.995. What is left: networks with H >= 768 read ~1.7x slow in every
seed (R of 9-17 MB per direction is re-read from the last-level cache, faster than the weight traffic other families
teach), and the seeds differ by one bias (seed 2 reads 1.2-1.5x slow at every size).

Before that, tokenizers 6 and 7 count R once, and the session-33 trial "tokenizer 8" (at 03e7cf1, never shipped)
counted R once per step but kept the batched view (D*T products of activations, like attention): held-out rnn ranked
better (Spearman 0.973-0.975 -> 0.989-0.992) and missed as much the other way (58.4 % over 3 seeds, networks whose R
fits in cache read ~2x slow; ``onnx_latency_lofo20_tokenizer8_compare.md``); with the decoders in training it missed
by 46.9 % (seed 0, ``onnx_latency_epyc21_lofo_rnn_tokenizer8_seed0.md``).
"""

from __future__ import annotations

from dataclasses import replace

from model.onnx_cost import BYTES_PER_ELEMENT, RECURRENT_OPS, NodeCost, elements, node_cost, recurrent_steps_and_rows
from model.onnx_graph import NetNode, NetworkGraph


def _dims(node: NetNode) -> tuple[int, int, int, int, int, int] | None:
    """(T, B, I, D, G*H, H) of a recurrent node, or None where its X, W or R shape is not fully known."""
    shapes = node.input_shapes
    time_rows = recurrent_steps_and_rows(shapes, node.attrs)
    if time_rows is None or any(min(s) <= 0 for s in shapes[:3]):
        return None
    x, w, r = shapes[:3]
    steps, rows = time_rows
    directions, gate_units, inputs = w
    hidden = r[2]
    if inputs != x[2] or r[:2] != (directions, gate_units):
        return None
    return steps, rows, inputs, directions, gate_units, hidden


def lowered_nodes(node: NetNode, inputs: tuple[int, ...], first: int, repeated_steps: bool = False) -> list[NetNode]:
    """The three nodes standing for one recurrent node whose predecessors are ``inputs`` (already renumbered), the
    first placed at index ``first``; the node itself where its shapes are not known. ``repeated_steps`` (tokenizer 9):
    the step node is one step's product with R as its weight, run ``_repeat`` = D*T times, R read by every step."""
    dims = _dims(node)
    if dims is None:
        return [replace(node, inputs=inputs)]
    steps, rows, width, directions, gate_units, hidden = dims
    sequential = directions * steps
    projection_shapes = ((steps * rows, width), (width, directions * gate_units))
    projection_out = ((steps * rows, directions * gate_units),)
    projection = NetNode(
        name=f"{node.name}/input_projection",
        op_type="MatMul",
        inputs=inputs,
        input_shapes=projection_shapes,
        output_shapes=projection_out,
        attrs={"_weights": [1]},
        cost=node_cost("MatMul", projection_shapes, projection_out, {}, weight_positions=(1,)),
    )
    step_shapes = ((sequential, rows, hidden), (sequential, hidden, gate_units))
    step_out = ((sequential, rows, gate_units),)
    products = node_cost("MatMul", step_shapes, step_out, {})
    recurrent_weights = float(directions * gate_units * hidden)  # R of every direction
    weight_reads = recurrent_weights * (steps if repeated_steps else 1)  # tokenizer 9: each step reads its R again
    step_cost = NodeCost(
        macs=products.macs,
        flops=products.flops,
        params=recurrent_weights,
        memory_bytes=BYTES_PER_ELEMENT * (weight_reads + elements(step_shapes[0]) + elements(step_out[0])),
    )
    one_step = ((rows, hidden), (hidden, gate_units)), ((rows, gate_units),)  # tokenizer 9's view of the node
    step = NetNode(
        name=f"{node.name}/recurrent_steps",
        op_type="MatMul",
        inputs=(first,),
        input_shapes=one_step[0] if repeated_steps else step_shapes,
        output_shapes=one_step[1] if repeated_steps else step_out,
        attrs={"_weights": [1], "_repeat": sequential} if repeated_steps else {},
        cost=step_cost,
    )
    original = node.cost
    gate_inputs = node.input_shapes[3:]  # bias, sequence lengths, initial states
    gates = NetNode(
        name=f"{node.name}/gates",
        op_type=node.op_type,
        inputs=(first + 1,),
        input_shapes=(step_out[0], *gate_inputs),
        output_shapes=node.output_shapes,
        attrs={k: v for k, v in node.attrs.items() if k != "_weights"},
        cost=NodeCost(
            macs=0.0,
            flops=max(original.flops - projection.cost.flops - step.cost.flops, 0.0),
            params=max(original.params - projection.cost.params - step.cost.params, 0.0),
            memory_bytes=BYTES_PER_ELEMENT * (elements(step_out[0]) + sum(elements(s) for s in node.output_shapes)),
        ),
    )
    return [projection, step, gates]


def lower_recurrent(graph: NetworkGraph, repeated_steps: bool = False) -> NetworkGraph:
    """``graph`` with each LSTM / GRU / RNN node replaced by its lowered nodes (``lowered_nodes``), in place, so
    the order stays topological; the same graph object when it has none."""
    if not any(node.op_type in RECURRENT_OPS for node in graph.nodes):
        return graph
    nodes: list[NetNode] = []
    new_index: list[int] = []  # old index -> index of the node that now produces its outputs
    for node in graph.nodes:
        inputs = tuple(new_index[p] for p in node.inputs)
        if node.op_type in RECURRENT_OPS:
            nodes += lowered_nodes(node, inputs, len(nodes), repeated_steps)
        else:
            nodes.append(replace(node, inputs=inputs))
        new_index.append(len(nodes) - 1)
    return replace(graph, nodes=tuple(nodes))
