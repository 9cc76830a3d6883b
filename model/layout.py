"""Which nodes onnxruntime's CPU provider runs in its blocked NCHWc layout, and where it converts between layouts.

At its highest optimisation level onnxruntime rewrites 2-D convolutions, pools and the elementwise ops between them
to a channel-blocked layout (NCHW16c on AVX-512: channels in blocks of 16) and inserts ``ReorderInput`` /
``ReorderOutput`` kernels wherever a blocked tensor meets an op that cannot read it: a grouped convolution whose
groups are not whole blocks, a squeeze-and-excitation ``Mul`` that broadcasts a (1, C, 1, 1) vector, a channel
shuffle's ``Reshape``, a ``Concat`` of unaligned parts, the ``Flatten`` before a classifier. Each reorder copies the
whole activation, and none of them appear in the exported graph. This module replays the rules of onnxruntime's
``NchwcTransformer`` on a NetworkGraph, so the tokenizer can say where the copies happen without onnxruntime
(``tests/test_model_layout.py`` checks the replay against the real optimiser).

The rules, as onnxruntime 1.31 applies them on a CPU with 16-float vectors (measured with small probes, and the
transformer's source for the rest):

- ``Conv`` with a 4-D constant weight: a plain convolution reads blocked input when it has at least 16 input channels
  divisible by 4, and reads NCHW input directly when it has fewer than 16; a depthwise one needs a channel count
  divisible by 4; other grouped ones need whole blocks per group (in and out). Output channels are padded.
- ``MaxPool`` / ``AveragePool``: channels divisible by 16 (converting an NCHW input if needed);
  ``GlobalAveragePool`` / ``GlobalMaxPool``: the same, but only on an input that is already blocked.
- ``Add`` / ``Sum`` / ``Mul`` of blocked tensors of one shape, ``Concat`` on channels of blocked parts with whole
  blocks each, ``BatchNormalization``, ``Resize`` / ``Upsample`` on spatial axes, and activations (Relu, Clip,
  Sigmoid, SiLU, HardSwish, ...) of a blocked input stay blocked.
- A ``Transpose`` to channels-last of a blocked input becomes the reorder itself.
- Everything else reads NCHW, so a blocked producer it reads gets one ``ReorderOutput`` (shared by all such readers).
"""

from __future__ import annotations

import numpy as np

from model.onnx_graph import NetNode, NetworkGraph

BLOCK = 16  # floats per channel block: AVX-512 (both CPU devices); AVX2 machines use 8
LAYOUT_NAMES: tuple[str, ...] = ("nchwc", "reorder_to_nchw", "reorder_to_nchwc")
LAYOUT_DIM = len(LAYOUT_NAMES)
POOLS = frozenset({"MaxPool", "AveragePool"})
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool"})
ACTIVATIONS = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu"})
BINARY = frozenset({"Add", "Sum", "Mul"})


def _four_d(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and all(d > 0 for d in shape)


def _channels(node: NetNode) -> int:
    out = node.output_shapes[0] if node.output_shapes else ()
    return int(out[1]) if _four_d(out) else 0


def conv_layout(node: NetNode, block: int = BLOCK) -> str | None:
    """'blocked' (reads a blocked input), 'direct' (reads NCHW, writes blocked) or None (stays NCHW) for a Conv."""
    shapes = node.input_shapes
    if node.op_type != "Conv" or len(shapes) < 2 or not _four_d(shapes[0]) or not _four_d(shapes[1]):
        return None
    if 1 not in node.attrs.get("_weights", ()):  # the weight must be a constant
        return None
    out_channels, in_per_group = int(shapes[1][0]), int(shapes[1][1])
    groups = int(node.attrs.get("group", 1) or 1)
    if groups > 1:
        if in_per_group == 1 and out_channels == groups:  # depthwise
            return "blocked" if out_channels % 4 == 0 else None
        if in_per_group % block or out_channels % groups or (out_channels // groups) % block:
            return None
        return "blocked"
    if in_per_group < block:
        return "direct"
    return "blocked" if in_per_group % 4 == 0 else None


def successor_counts(graph: NetworkGraph) -> np.ndarray:
    """(n,) how many data edges leave each node."""
    successors = np.zeros(graph.n, dtype=np.int64)
    for node in graph.nodes:
        for j in node.inputs:
            successors[j] += 1
    return successors


def layout_flags(graph: NetworkGraph, successors: np.ndarray | None = None, block: int = BLOCK) -> np.ndarray:
    """(n, LAYOUT_DIM) per node: 1 where it runs blocked; 1 where a ``ReorderOutput`` converts its blocked output
    back to NCHW (or it is the channels-last ``Transpose`` that does so); 1 where a ``ReorderInput`` converts its NCHW
    output for a blocked reader."""
    n = graph.n
    if successors is None:
        successors = successor_counts(graph)
    blocked = np.zeros(n, dtype=bool)
    channels = np.zeros(n, dtype=np.int64)
    flags = np.zeros((n, LAYOUT_DIM), dtype=np.float32)
    for i, node in enumerate(graph.nodes):
        op, preds = node.op_type, node.inputs
        data_in = preds[0] if len(preds) == 1 else None  # the one node input of a unary op (weights are not nodes)
        in_blocked = data_in is not None and bool(blocked[data_in])
        out = node.output_shapes[0] if node.output_shapes else ()
        runs_blocked = False
        if op == "Conv":
            mode = conv_layout(node, block)
            if mode is not None and len(preds) <= 1:
                runs_blocked = True
                if mode == "direct" and in_blocked:
                    flags[data_in, 1] = 1.0  # a blocked producer feeding an NCHW reader
                elif mode == "blocked" and data_in is not None and not in_blocked:
                    flags[data_in, 2] = 1.0
        elif op in POOLS and len(preds) <= 1 and _four_d(out) and len(node.output_shapes) == 1:
            if out[1] % block == 0:
                runs_blocked = True
                if data_in is not None and not in_blocked:
                    flags[data_in, 2] = 1.0
        elif op in GLOBAL_POOLS:
            runs_blocked = in_blocked and _four_d(out) and out[1] % block == 0
        elif op in ACTIVATIONS or op == "BatchNormalization":
            runs_blocked = in_blocked and _four_d(out)
        elif op in ("Resize", "Upsample"):
            runs_blocked = in_blocked and _four_d(out) and out[:2] == node.input_shapes[0][:2]
        elif op in BINARY:
            shapes = node.input_shapes
            runs_blocked = (
                not node.attrs.get("_weights")
                and len(shapes) >= 2
                and all(s == shapes[0] for s in shapes)
                and _four_d(shapes[0])
                and len(preds) >= 1
                and all(blocked[j] for j in preds)
            )
        elif op == "Concat":
            runs_blocked = (
                int(node.attrs.get("axis", 0)) == 1
                and len(preds) == len(node.input_shapes)
                and all(blocked[j] and channels[j] % block == 0 for j in preds)
            )
        elif op == "Transpose" and in_blocked and list(node.attrs.get("perm", [])) == [0, 2, 3, 1]:
            flags[i, 1] = 1.0  # onnxruntime replaces it by a channels-last ReorderOutput
        if runs_blocked:
            blocked[i] = True
            channels[i] = _channels(node)
            flags[i, 0] = 1.0
        else:
            for j in preds:  # an NCHW reader of a blocked tensor (the Transpose above is the reorder itself)
                if blocked[j] and not (op == "Transpose" and flags[i, 1]):
                    flags[j, 1] = 1.0
    for i in range(n):  # blocked graph outputs are converted back
        if blocked[i] and successors[i] == 0:
            flags[i, 1] = 1.0
    return flags
