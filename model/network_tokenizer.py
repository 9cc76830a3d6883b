"""The whole-network tokenizer: a NetworkGraph into one token per op plus a whole-graph feature vector.

Token = [op one-hot (64) | smooth codes of the node's numbers (16 x 7) | alignment flags (5 x 3) | position code
(32) | sum of predecessor position codes (32) | fusion flags (1) | GEMM view (4 x 7) | layout flags (3) | repeat (1) |
network weights (1 x 7)].
Numbers (FLOPs, params, bytes, shapes, kernel, stride, groups, degrees) enter on a log2 scale, each as [v/16, sin/cos
of v at 3 frequencies], so nearby sizes get nearby codes and unseen sizes interpolate. Position codes are the transformer's
sinusoids over the node index (wavelengths up to 4096), so the predecessor sum tells the network how far back each
input reaches (skip connections, concatenations). Whole-graph features (log totals, the FLOPs share of each op
kind, the MAC share of unaligned convs) join at the head.

Alignment flags: a smooth code cannot say that 24 channels per group is slow where 16 and 32 are fast, and CPU
kernels care. onnxruntime's blocked (NCHWc) convolutions want channel counts that are multiples of the SIMD width
(8 floats on AVX2, 16 on AVX-512). Without these flags, leave-one-family-out predictors read RegNets with 8 or 24
channels per group about 25 % too fast and those with 16, 32 or 48 about 13 % too slow
(``benchmarks/results/onnx_latency_alignment.md``). So each node also says whether its input and output channels,
channels per group and last dimension divide by 4, 8 and 16: +1 yes, -1 no, 0 not applicable. Channel counts are
flagged on convolutions only: dimension 1 of another op's tensor may be a token count (ViT) or a height
(channels-last), and reading it as channels taught held-out ViTs to look like unaligned convs.

Fusion flags: onnxruntime's CPU graph optimiser fuses some op pairs into one kernel that the exported graph does not
show, and where the same ops are fused or not depending on the graph, the token must say which. One such pair is
known to matter: an ``Add`` whose only consumer is a ``LayerNormalization`` becomes one ``SkipLayerNormalization``
(every block of a post-LN transformer), while a pre-LN block's ``Add`` also feeds the next residual and stays apart.
The fused kernel is the slower one on one thread (``benchmarks/results/onnx_layernorm_fusion.md``: pre-LN encoders
run at 0.86x post-LN ones of identical compute), and without the flag tokenizer 3 read pre-LN text encoders ~17 %
slow and post-LN ones ~7 % fast. The flags sit after the position codes, so a version-3 token is a prefix of a
version-4 one (``tokens_for_version``). A flag only teaches where a training family sets it: with the text encoders
held out of 21 families none did (post-LN text read 18 % fast); the post-LN ViTs of ``vitpost`` now do.

GEMM view: a convolution and a matrix product run the same kind of kernel, but their exported shapes read
differently. A ConvNeXt block's ``MatMul`` on a channels-last (1, H, W, C) tensor says "H channels", a ViT's on (1,
T, C) says "T channels", a MobileNet's 1x1 ``Conv`` on (1, C, H, W) says "C channels", yet all three are one (H*W
or T) x C by C x C' product. So every Conv, ConvTranspose, MatMul and Gemm also carries the product it computes as
smooth codes of (batch, M, N, K): batch = independent products (image batch x groups, or the broadcast leading
dimensions of a MatMul of two activations), M = output rows (output pixels, or every leading position of a MatMul
by a weight), N = output columns per group, K = the reduction length (input channels per group x kernel elements).
Other ops get zeros. Version 5 appends these columns after the fusion flags, so version-3 and version-4 tokens stay
prefixes.

Recurrent lowering (version 6, same width): an LSTM / GRU / RNN node becomes the input-projection product, the
step-by-step recurrent product and a gate node (``model.recurrent``), so a recurrent network reads as matrix
products every family teaches instead of one op code only the sequence family has. ``graph_for_version`` applies it;
a predictor of version 5 or earlier gets the graph as exported.

Layout flags (version 7): onnxruntime runs convolutions, pools and the elementwise ops between them in a
channel-blocked layout and copies an activation whenever it meets an op that cannot read that layout (a grouped
convolution of partial blocks, a squeeze-and-excitation ``Mul``, a channel shuffle, the classifier's ``Flatten``).
These copies are kernels of their own that the exported graph does not show, and which families pay for them
differs: a MobileNetV2 has almost none, a ShuffleNet or a RegNet one or two per block. ``model.layout`` replays
onnxruntime's rules; each token says whether its node runs blocked, and whether its output is converted back to NCHW
or into the blocked layout. Appended after the GEMM view, so earlier tokens stay prefixes.

Repeat (version 9): a node whose kernel runs the same work many times in sequence, today a recurrent op's step
product (``model.recurrent``: one step's product with R as its weight, D*T times), carries ``_repeat``; its token's
FLOPs, MACs and bytes are one repetition's, and the last column holds log2(repeat) / 16 (0 for every other node).
The whole-network readout adds ln(repeat) to the node's compute and memory terms and does not feed the column to
the encoder (a count no other family shows would be an untrained input there). Held-out recurrent networks read
2.3x fast before (``model.recurrent``). Version 8 was a trial of session 33 (R read per step in the batched view),
never shipped.

Network weights (version 10): every token also carries the smooth code of how many parameters its whole network reads
in full on every run (``network_weights``: every node's but a ``Gather``'s, which reads a few rows of its table). A
benchmark loop runs the network again and again, so a weight is read from cache only where all those weights fit
there; a product whose own weight is a few MB streams it from memory in a network of 200 MB. A node token knew its own
weight only: held out of 23 families, decoders reading under 26 MB of weights read 4 % fast, those over 120 MB 39 %
fast, and the error follows the network's weights (correlation -0.69 of their log with the log error) more than the
node's largest (-0.21). With the column, held out of 23, 3 seeds paired with version 9
(``benchmarks/results/onnx_latency_epyc23_lofo_tokenizer9_vs_10.md``): decoder 28.1 -> 21.6 %, AlexNet 18.5 -> 16.4 %,
RNN 37.8 -> 32.7 %, lower on test in 8 of 9 splits; validation ties (6.09 -> 6.03 %, lower in 5 of 9). The largest
decoders still read fast (0.71 over 120 MB, 0.61 before).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.errors import ArchitectureError
from model.layout import LAYOUT_DIM, layout_flags, successor_counts
from model.onnx_cost import elements, gemm_dims
from model.onnx_graph import DEFAULT_MAX_NETWORK_NODES, NetNode, NetworkGraph
from model.onnx_ops import VOCAB, onnx_op_code
from model.recurrent import lower_recurrent

NUMBER_NAMES: tuple[str, ...] = (
    "flops",
    "macs",
    "params",
    "memory_bytes",
    "out_elements",
    "out_channels",
    "out_spatial",
    "out_last_dim",
    "in_channels",
    "in_elements",
    "kernel_elements",
    "stride",
    "groups",
    "channels_per_group",
    "inputs",
    "successors",
)
N_NUMBERS = len(NUMBER_NAMES)
# Bumped whenever the meaning of a token or feature column changes, even at the same width; recorded in every network
# predictor's card and checked at load. 1: before the alignment flags (240-wide tokens); 2: flags on every node (255);
# 3: channel flags on convolutions only, +1 / -1 / 0; 4: the fusion flag column at the end; 5: the GEMM view after it;
# 6: recurrent ops lowered to their products (same width as 5); 7: the layout flags after the GEMM view; 8: a trial,
# never shipped; 9: a recurrent step is one step's product repeated D*T times, with the repeat column at the end;
# 10: the parameters the whole network reads in full (``network_weights``) on every node, after the repeat column.
TOKENIZER_VERSION = "10"
LOWERED_FROM_VERSION = 6
REPEATED_STEPS_FROM_VERSION = 9
ALIGNED_NAMES: tuple[str, ...] = (
    "in_channels",
    "out_channels",
    "in_channels_per_group",
    "out_channels_per_group",
    "out_last_dim",
)
ALIGNMENT_DIVISORS: tuple[int, ...] = (4, 8, 16)
ALIGNMENT_DIM = len(ALIGNED_NAMES) * len(ALIGNMENT_DIVISORS)
SMOOTH_FREQUENCIES = np.array([0.5, 1.0, 2.0])
SMOOTH_DIM = 1 + 2 * len(SMOOTH_FREQUENCIES)
POSITION_DIM = 32
FUSION_NAMES: tuple[str, ...] = ("skip_layernorm",)
FUSION_DIM = len(FUSION_NAMES)
GEMM_NAMES: tuple[str, ...] = ("batch", "m", "n", "k")
GEMM_DIM = len(GEMM_NAMES) * SMOOTH_DIM
BASE_NODE_DIM = VOCAB + N_NUMBERS * SMOOTH_DIM + ALIGNMENT_DIM  # the node part before the fusion flags
REPEAT_DIM = 1
NETWORK_WEIGHTS_DIM = SMOOTH_DIM
NODE_PART_DIM = BASE_NODE_DIM + FUSION_DIM + GEMM_DIM + LAYOUT_DIM + REPEAT_DIM + NETWORK_WEIGHTS_DIM
NETWORK_TOKEN_DIM = NODE_PART_DIM + 2 * POSITION_DIM
REPEAT_COLUMN = NETWORK_TOKEN_DIM - NETWORK_WEIGHTS_DIM - 1  # log2(times the node's work runs in its kernel) / 16
NETWORK_WEIGHTS_COLUMN = NETWORK_TOKEN_DIM - NETWORK_WEIGHTS_DIM  # log2(1 + the network's parameters) / 16
# token width per version still served: a version's token is a prefix of the next one's
TOKEN_WIDTHS: dict[str, int] = {
    "3": REPEAT_COLUMN - FUSION_DIM - GEMM_DIM - LAYOUT_DIM,
    "4": REPEAT_COLUMN - GEMM_DIM - LAYOUT_DIM,
    "5": REPEAT_COLUMN - LAYOUT_DIM,
    "6": REPEAT_COLUMN - LAYOUT_DIM,
    "7": REPEAT_COLUMN,
    "9": REPEAT_COLUMN + REPEAT_DIM,
    "10": NETWORK_TOKEN_DIM,
}
OP_KINDS: dict[str, tuple[str, ...]] = {
    "conv": ("Conv", "ConvTranspose"),
    "matmul": ("MatMul", "Gemm", "Einsum"),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax"),
    "norm": ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "Softmax"),
}
GRAPH_FEATURE_NAMES: tuple[str, ...] = (
    "log2_flops",
    "log2_macs",
    "log2_params",
    "log2_memory_bytes",
    "log2_nodes",
    "log2_input_elements",
    "share_conv",
    "share_depthwise",
    "share_matmul",
    "share_pool",
    "share_norm",
    "share_elementwise",
    "log2_conv_nodes",
    "log2_matmul_nodes",
    "log2_max_activation",
    "log2_edges",
    "share_unaligned_conv_8",
    "share_unaligned_conv_16",
)
GRAPH_FEATURE_DIM = len(GRAPH_FEATURE_NAMES)


def log2_column(name: str) -> int:
    """Token column holding log2(1 + x) / 16 of the named node number (the first entry of its smooth code)."""
    return VOCAB + NUMBER_NAMES.index(name) * SMOOTH_DIM


def smooth_code(values: np.ndarray) -> np.ndarray:
    """(..., K) non-negative numbers -> (..., K * 7) codes of log2(1 + x)."""
    v = np.log2(1.0 + np.maximum(values, 0.0))[..., None]
    angles = v * SMOOTH_FREQUENCIES
    code = np.concatenate([v / 16.0, np.sin(angles), np.cos(angles)], axis=-1)
    return code.reshape(*values.shape[:-1], values.shape[-1] * SMOOTH_DIM)


def position_code(positions: np.ndarray) -> np.ndarray:
    """Transformer sinusoids of node indices: (...,) -> (..., 32)."""
    half = POSITION_DIM // 2
    wavelengths = 4096.0 ** (np.arange(half) / (half - 1))
    angles = np.asarray(positions, dtype=np.float64)[..., None] * (2 * np.pi / wavelengths)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)


def _is_depthwise(node: NetNode) -> bool:
    groups = int(node.attrs.get("group", 1))
    return (
        node.op_type == "Conv"
        and groups > 1
        and len(node.input_shapes) > 1
        and len(node.input_shapes[1]) > 1
        and node.input_shapes[1][1] == 1
    )


def _channels(node: NetNode) -> tuple[float, float, float]:
    """(input channels, output channels, groups) of a node; a count is 0 where the node's shapes do not say."""
    out = node.output_shapes[0] if node.output_shapes else ()
    first_in = node.input_shapes[0] if node.input_shapes else ()
    in_channels = float(first_in[1]) if len(first_in) > 1 and first_in[1] > 0 else 0.0
    out_channels = float(out[1]) if len(out) > 1 and out[1] > 0 else 0.0
    return in_channels, out_channels, float(node.attrs.get("group", 1)) or 1.0


def repeat_count(node: NetNode) -> float:
    """How many times the node's kernel runs its work in sequence (``_repeat``; 1 for nearly every node)."""
    return float(node.attrs.get("_repeat", 1))


def node_numbers(node: NetNode, n_successors: int) -> list[float]:
    """The node's numbers in ``NUMBER_NAMES`` order; FLOPs, MACs and bytes of one repetition (``repeat_count``)."""
    out = node.output_shapes[0] if node.output_shapes else ()
    first_in = node.input_shapes[0] if node.input_shapes else ()
    kernel = node.attrs.get("kernel_shape")
    if kernel is None and node.op_type == "Conv" and len(node.input_shapes) > 1:
        kernel = list(node.input_shapes[1][2:])
    strides = node.attrs.get("strides") or [1]
    in_channels, out_channels, groups = _channels(node)
    repeat = repeat_count(node)
    return [
        node.cost.flops / repeat,
        node.cost.macs / repeat,
        node.cost.params,
        node.cost.memory_bytes / repeat,
        elements(out),
        out_channels,
        elements(out[2:]) if len(out) > 2 else 0.0,
        float(out[-1]) if out and out[-1] > 0 else 0.0,
        in_channels,
        elements(first_in),
        float(math.prod(kernel)) if kernel else 0.0,
        float(max(strides)),
        groups,
        in_channels / groups,
        float(len(node.inputs)),
        float(n_successors),
    ]


def node_alignment(node: NetNode) -> np.ndarray:
    """(ALIGNMENT_DIM,) +1 / -1: does each of ``ALIGNED_NAMES`` divide by each divisor; 0 where it does not apply.

    Channel counts apply to convolutions only (dimension 1 of another op's tensor may be tokens or height)."""
    out = node.output_shapes[0] if node.output_shapes else ()
    in_channels, out_channels, groups = _channels(node)
    conv = node.op_type in OP_KINDS["conv"]
    counts = (
        in_channels if conv else 0.0,
        out_channels if conv else 0.0,
        in_channels / groups if conv else 0.0,
        out_channels / groups if conv else 0.0,
        float(out[-1]) if out and out[-1] > 0 else 0.0,
    )
    return np.asarray(
        [0.0 if c <= 0 or c != int(c) else (1.0 if int(c) % d == 0 else -1.0) for c in counts for d in ALIGNMENT_DIVISORS],
        dtype=np.float32,
    )


def fusion_flags(graph: NetworkGraph, successors: np.ndarray) -> np.ndarray:
    """(n, FUSION_DIM) 1 where onnxruntime fuses the node with a neighbour into a kernel of another cost, else 0:
    ``skip_layernorm`` marks an ``Add`` of two 3-D tensors of one shape whose only consumer is a
    ``LayerNormalization`` reading it, and that norm (onnxruntime 1.31 leaves 4-D ones, as in Swin, apart)."""
    flags = np.zeros((graph.n, FUSION_DIM), dtype=np.float32)
    for i, node in enumerate(graph.nodes):
        if node.op_type != "LayerNormalization" or not node.inputs:
            continue
        add = graph.nodes[node.inputs[0]]
        shapes = add.input_shapes
        if (
            add.op_type == "Add"
            and successors[node.inputs[0]] == 1
            and len(shapes) == 2
            and len(shapes[0]) == 3
            and shapes[0] == shapes[1]
        ):
            flags[i, 0] = flags[node.inputs[0], 0] = 1.0
    return flags


def _known(*dims: float) -> bool:
    return all(d > 0 for d in dims)


def gemm_view(node: NetNode) -> tuple[float, float, float, float]:
    """(batch, M, N, K) of the matrix product a Conv, ConvTranspose, MatMul or Gemm computes; zeros for other ops
    and where a shape is unknown."""
    shapes, out = node.input_shapes, (node.output_shapes[0] if node.output_shapes else ())
    groups = _channels(node)[2]
    if node.op_type == "Conv" and len(shapes) > 1 and len(shapes[1]) > 2 and len(out) > 2:
        weight = shapes[1]  # (C_out, C_in / groups, *kernel)
        view = (out[0] * groups, elements(out[2:]), weight[0] / groups, float(math.prod(weight[1:])))
    elif node.op_type == "ConvTranspose" and len(shapes) > 1 and len(shapes[0]) > 2 and len(shapes[1]) > 2:
        data, weight = shapes[0], shapes[1]  # weight (C_in, C_out / groups, *kernel): each input pixel scatters
        view = (data[0] * groups, elements(data[2:]), float(math.prod(weight[1:])), weight[0] / groups)
    elif node.op_type == "MatMul" and len(shapes) > 1 and shapes[0] and shapes[1]:
        a = (1, *shapes[0]) if len(shapes[0]) == 1 else tuple(shapes[0])
        b = (*shapes[1], 1) if len(shapes[1]) == 1 else tuple(shapes[1])
        k, n = a[-1], b[-1]
        if len(b) == 2:  # one shared right operand (a weight): every leading dimension of the left one is a row
            batch, m = 1.0, elements(a[:-1])
        else:  # batched products (attention): the broadcast leading dimensions
            m = a[-2]
            batch = elements(out) / (m * n) if _known(m, n) and elements(out) > 0 else 0.0
        view = (batch, m, n, k)
    elif node.op_type == "Gemm" and (dims := gemm_dims(shapes, node.attrs)) is not None:
        m, k, n = dims
        view = (1.0, m, n, k)
    else:
        return (0.0, 0.0, 0.0, 0.0)
    batch, m, n, k = (float(v) for v in view)
    return (batch, m, n, k) if _known(batch, m, n, k) else (0.0, 0.0, 0.0, 0.0)


def network_weights(graph: NetworkGraph) -> float:
    """Parameters the network reads in full on every run: every node's but a ``Gather``'s (an embedding lookup reads
    the rows it is asked for, not its table)."""
    return float(sum(node.cost.params for node in graph.nodes if node.op_type != "Gather"))


def graph_for_version(graph: NetworkGraph, version: str = TOKENIZER_VERSION) -> NetworkGraph:
    """The graph as a predictor of tokenizer ``version`` reads it: recurrent ops lowered from version 6 on, their
    steps as one repeated step product from version 9 on."""
    if int(version) < LOWERED_FROM_VERSION:
        return graph
    return lower_recurrent(graph, repeated_steps=int(version) >= REPEATED_STEPS_FROM_VERSION)


def tokens_for_version(tokens: np.ndarray, version: str) -> np.ndarray:
    """Tokens of this tokenizer cut to what a predictor trained on ``version`` reads (a prefix of the columns)."""
    if version not in TOKEN_WIDTHS:
        raise ValueError(f"tokenizer version {version!r} is not served; served: {', '.join(TOKEN_WIDTHS)}")
    return tokens[..., : TOKEN_WIDTHS[version]]


def unaligned_conv(node: NetNode, divisor: int) -> bool:
    """A non-depthwise Conv whose input or output channels per group do not divide by ``divisor``."""
    if node.op_type != "Conv" or _is_depthwise(node):
        return False
    in_channels, out_channels, groups = _channels(node)
    return any(c % divisor for c in (int(in_channels / groups), int(out_channels / groups)))


def graph_features(graph: NetworkGraph) -> np.ndarray:
    totals = graph.totals()
    flops = max(totals["flops"], 1.0)
    share = dict.fromkeys(("conv", "depthwise", "matmul", "pool", "norm", "elementwise"), 0.0)
    conv_nodes = matmul_nodes = 0
    max_activation = 0.0
    edges = 0
    for node in graph.nodes:
        edges += len(node.inputs)
        if node.output_shapes:
            max_activation = max(max_activation, elements(node.output_shapes[0]))
        kind = next((k for k, ops in OP_KINDS.items() if node.op_type in ops), "elementwise")
        if kind == "conv":
            conv_nodes += 1
            if _is_depthwise(node):
                kind = "depthwise"
        matmul_nodes += kind == "matmul"
        share[kind] += node.cost.flops / flops
    input_elements = sum(elements(s) for s in graph.input_shapes.values())
    raw = [
        totals["flops"],
        totals["macs"],
        totals["params"],
        totals["memory_bytes"],
        totals["nodes"],
        input_elements,
    ]
    counts = [conv_nodes, matmul_nodes, max_activation, edges]
    macs = max(totals["macs"], 1.0)
    unaligned = [sum(n.cost.macs for n in graph.nodes if unaligned_conv(n, d)) / macs for d in (8, 16)]
    values = [math.log2(1 + v) for v in raw] + list(share.values()) + [math.log2(1 + v) for v in counts] + unaligned
    return np.asarray(values, dtype=np.float32)


@dataclass(frozen=True)
class NetworkTokens:
    """``tokens`` (B, L, NETWORK_TOKEN_DIM) float32, ``mask`` (B, L) bool, ``features`` (B, GRAPH_FEATURE_DIM) float32."""

    tokens: np.ndarray
    mask: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def node_part(graph: NetworkGraph, max_nodes: int = DEFAULT_MAX_NETWORK_NODES) -> np.ndarray:
    """(n, NODE_PART_DIM) order-independent part of each node's token: op one-hot, number codes, alignment flags,
    fusion flags, GEMM view, layout flags, repeat, network weights."""
    n = graph.n
    if n > max_nodes:
        raise ArchitectureError("too_large", f"the network has {n} nodes, the tokenizer limit is {max_nodes}")
    successors = successor_counts(graph)
    op = np.zeros((n, VOCAB), dtype=np.float32)
    op[np.arange(n), [onnx_op_code(node.op_type) for node in graph.nodes]] = 1.0
    numbers = np.asarray([node_numbers(node, int(successors[i])) for i, node in enumerate(graph.nodes)], dtype=np.float64)
    alignment = np.stack([node_alignment(node) for node in graph.nodes]) if n else np.zeros((0, ALIGNMENT_DIM))
    fusion = fusion_flags(graph, successors)
    gemm = smooth_code(np.asarray([gemm_view(node) for node in graph.nodes], dtype=np.float64).reshape(n, len(GEMM_NAMES)))
    layout = layout_flags(graph, successors)
    repeat = np.log2([repeat_count(node) for node in graph.nodes]).reshape(n, REPEAT_DIM) / 16.0
    weights = np.broadcast_to(smooth_code(np.array([network_weights(graph)])), (n, NETWORK_WEIGHTS_DIM))
    parts = [op, smooth_code(numbers), alignment, fusion, gemm, layout, repeat, weights]
    return np.concatenate(parts, axis=1).astype(np.float32)


def edge_arrays(graph: NetworkGraph) -> tuple[np.ndarray, np.ndarray]:
    """Data edges as (sources, destinations) node-index arrays."""
    pairs = [(p, i) for i, node in enumerate(graph.nodes) for p in node.inputs]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    src, dst = np.asarray(pairs, dtype=np.int64).T
    return src, dst


def assemble_tokens(nodes: np.ndarray, src: np.ndarray, dst: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Full tokens with the nodes renumbered by ``order`` (order[k] = old index placed at position k).

    The order must be topological; ``None`` keeps the ONNX order. Used by the tokenizer and by the
    information-flow-consistency augmentation (same DAG, another valid topological numbering).
    """
    n = nodes.shape[0]
    if order is None:
        order = np.arange(n)
    new_index = np.empty(n, dtype=np.int64)
    new_index[order] = np.arange(n)
    positions = position_code(np.arange(n))
    sources = np.zeros((n, POSITION_DIM))
    np.add.at(sources, new_index[dst], positions[new_index[src]])
    has_input = np.zeros(n, dtype=bool)
    has_input[new_index[dst]] = True
    sources[~has_input] = position_code(np.array(-1))
    placed = nodes[order]
    return np.concatenate([placed[:, :BASE_NODE_DIM], positions, sources, placed[:, BASE_NODE_DIM:]], axis=1).astype(np.float32)


def network_token_matrix(graph: NetworkGraph, max_nodes: int = DEFAULT_MAX_NETWORK_NODES) -> np.ndarray:
    """(n, NETWORK_TOKEN_DIM) tokens of one graph in its ONNX (topological) order."""
    src, dst = edge_arrays(graph)
    return assemble_tokens(node_part(graph, max_nodes), src, dst)


def batch_network_tokens(matrices: Sequence[np.ndarray], features: Sequence[np.ndarray]) -> NetworkTokens:
    """Pad per-graph token matrices to the longest into one batch."""
    if not matrices:
        raise ArchitectureError("empty_batch", "no networks to tokenize")
    length = max(m.shape[0] for m in matrices)
    tokens = np.zeros((len(matrices), length, NETWORK_TOKEN_DIM), dtype=np.float32)
    mask = np.zeros((len(matrices), length), dtype=bool)
    for b, matrix in enumerate(matrices):
        tokens[b, : matrix.shape[0]] = matrix
        mask[b, : matrix.shape[0]] = True
    return NetworkTokens(tokens=tokens, mask=mask, features=np.stack(features).astype(np.float32))


def tokenize_networks(
    graphs: Sequence[NetworkGraph], max_nodes: int = DEFAULT_MAX_NETWORK_NODES, version: str = TOKENIZER_VERSION
) -> NetworkTokens:
    """Tokens of exported graphs as a predictor of tokenizer ``version`` reads them (``graph_for_version``); cut the
    columns with ``tokens_for_version``. ``max_nodes`` bounds the exported graph (lowering adds two nodes per
    recurrent op)."""
    for g in graphs:
        if g.n > max_nodes:
            raise ArchitectureError("too_large", f"the network has {g.n} nodes, the tokenizer limit is {max_nodes}")
    read = [graph_for_version(g, version) for g in graphs]
    return batch_network_tokens([network_token_matrix(g, g.n) for g in read], [graph_features(g) for g in read])
