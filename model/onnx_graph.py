"""ONNX -> whole-network IR: one node per op (weights are not nodes), attributes, shapes and costs.

Parsing never touches the file system: the model is decoded from bytes, tensors stored as external data are
used for their declared shapes only, and large initializers are replaced by typed graph inputs before onnx
shape inference (so a 100 MB upload is inferred as fast as a weight-free one). Symbolic input dimensions are
fixed from the request (batch, resolution) or defaults. Ops onnx cannot infer keep unknown (-1) dimensions
and zero cost rather than failing the request.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, shape_inference

from model.errors import ArchitectureError
from model.onnx_contrib import SCALAR, STANDARD_DOMAINS, Part, ir_op_type, lower
from model.onnx_cost import BYTES_PER_ELEMENT, NodeCost, node_cost
from model.onnx_einsum import einsum_parts
from model.onnx_order import sort_nodes
from model.onnx_patterns import fuse_layer_norms
from model.onnx_weights import WEIGHT_TYPES

# raised whenever parsing an upload can give another answer (caches key ONNX answers on it): 2 = onnxruntime-fused
# ops and opset 20's Gelu lowered, BatchNormalization folded into its Conv, Dropout dropped and decomposed layer
# norms fused (as onnxruntime does at load), unsorted graphs sorted, quantized products costed, memory at each
# tensor's width, weight types; 3 = two-operand Einsums read as the Transposes and MatMul they compute, the symbolic
# height and width of channels-last and 5-D (video) inputs set from the resolution and a video's frames from the
# sequence length, and the facts new warnings read (control flow, axes read as 1, unknown shapes, convolutions);
# 4 = symbolic dimensions named for a KV cache set from the past length (``named_length``)
PARSER_VERSION = 4
DEFAULT_MAX_NETWORK_NODES = 4096
DEFAULT_MAX_ELEMENTS = 2**31  # per tensor: guards against giant declared dimensions
MAX_INITIALIZER_ELEMENTS = 2**40  # declared weight shapes only (never allocated); beyond it costs overflow
SMALL_INITIALIZER = 64  # initializers up to this many elements stay (shape constants for data propagation)
SKIPPED_OPS = frozenset({"Constant", "Identity"})


@dataclass(frozen=True)
class NetNode:
    """One ONNX op: type, numeric attributes, predecessor node indices, input/output shapes and cost."""

    name: str
    op_type: str
    inputs: tuple[int, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    attrs: dict[str, Any]
    cost: NodeCost


@dataclass(frozen=True)
class NetworkGraph:
    """A whole network in ONNX (topological) order plus its input shapes and totals."""

    nodes: tuple[NetNode, ...]
    input_shapes: dict[str, tuple[int, ...]]
    opset: int
    producer: str = ""
    unknown_shapes: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    weight_types: tuple[str, ...] = ()  # element types of the weights ("float32", "int8", ...); () = not recorded
    # control-flow nodes (If, Loop, Scan) by op type, and the nodes inside their subgraphs: not costed (a Loop's trip
    # count or an If's branch is known only when it runs)
    control_flow: dict[str, int] = field(default_factory=dict)
    inner_nodes: int = 0
    defaulted_dims: tuple[str, ...] = ()  # symbolic input dimensions no request parameter sets, read as 1
    einsums: int = 0  # Einsum nodes read as the Transposes and MatMul they compute (model.onnx_einsum)

    @property
    def n(self) -> int:
        return len(self.nodes)

    def totals(self) -> dict[str, float]:
        return {
            "flops": float(sum(n.cost.flops for n in self.nodes)),
            "macs": float(sum(n.cost.macs for n in self.nodes)),
            "params": float(sum(n.cost.params for n in self.nodes)),
            "memory_bytes": float(sum(n.cost.memory_bytes for n in self.nodes)),
            "nodes": float(self.n),
        }

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form (the dataset stores this, not the ONNX weights)."""
        return {
            "opset": self.opset,
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "nodes": [
                [n.op_type, list(n.inputs), [list(s) for s in n.input_shapes], [list(s) for s in n.output_shapes], n.attrs]
                for n in self.nodes
            ],
            **({"weight_types": list(self.weight_types)} if self.weight_types else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkGraph:
        nodes = []
        for i, (op_type, inputs, in_shapes, out_shapes, attrs) in enumerate(data["nodes"]):
            in_s = tuple(tuple(s) for s in in_shapes)
            out_s = tuple(tuple(s) for s in out_shapes)
            weights = attrs.get("_weights", [])
            cost = node_cost(op_type, in_s, out_s, attrs, weights, attrs.get("_element_bytes"))
            nodes.append(NetNode(f"n{i}", op_type, tuple(inputs), in_s, out_s, attrs, cost))
        shapes = {k: tuple(v) for k, v in data["input_shapes"].items()}
        return cls(tuple(nodes), shapes, int(data["opset"]), weight_types=tuple(data.get("weight_types", ())))


@dataclass(frozen=True)
class ParseOptions:
    batch: int = 1
    resolution: int = 224
    sequence_length: int = 128
    past_length: int = 128
    max_nodes: int = DEFAULT_MAX_NETWORK_NODES
    max_elements: int = DEFAULT_MAX_ELEMENTS


def decode_model(data: bytes) -> onnx.ModelProto:
    """Decode ONNX bytes without loading external data; a clear error when they are not an ONNX model."""
    if not data:
        raise ArchitectureError("invalid_onnx", "empty upload: expected an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ArchitectureError("invalid_onnx", f"not a valid ONNX model (protobuf decode failed: {exc})") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise ArchitectureError("invalid_onnx", "the ONNX model has no graph nodes")
    return model


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _dims(shape: onnx.TensorShapeProto) -> tuple[int, ...]:
    return tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in shape.dim)


def named_length(name: str, options: ParseOptions) -> int | None:
    """The length a symbolic dimension's name asks for, as a decoder export with a KV cache names them (Hugging Face's
    ``past_sequence_length``, ``past_sequence_length + sequence_length``, onnxruntime-genai's ``total_sequence_length``):
    a name with "past" is the cache length, one with "total" the cache plus the new tokens, one with "seq" the new
    tokens, a sum of such names or integers their sum; None for any other name (the input's rank decides)."""
    terms = [term.strip().lower() for term in name.split("+")]
    if len(terms) > 1:
        values = [int(term) if term.isdigit() else named_length(term, options) for term in terms]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)
    word = terms[0]
    if "past" in word:
        return options.past_length
    if "total" in word:
        return options.past_length + options.sequence_length
    if "seq" in word:
        return options.sequence_length
    return None


def _fix_inputs(
    graph: onnx.GraphProto, initializer_names: set[str], options: ParseOptions, defaulted: list[str]
) -> dict[str, tuple[int, ...]]:
    """Set symbolic dims of the real inputs: axis 0 = batch; axes 2 and 3 of a 4-D input = resolution, or axes 1 and 2
    when the input is channels-last (axis 1 symbolic, axis 3 fixed: a TF / Keras model's (N, H, W, C)); axes 3 and 4
    of a 5-D input (N, C, T, H, W: video) = resolution and its axis 2 (frames) = sequence length; the other axes of a
    2-D or 3-D input (token ids, per-step features) = sequence length; anything else = 1, named in ``defaulted``. A
    named dimension that is axis 0 of some input is the batch on every input (an LSTM's initial state, (directions,
    batch, hidden)); other than the batch, a name ``named_length`` knows wins over the position (a KV cache's
    (batch, heads, past, head size) is no image)."""
    real = [v for v in graph.input if v.name not in initializer_names and v.type.HasField("tensor_type")]
    batch_names = {
        v.type.tensor_type.shape.dim[0].dim_param
        for v in real
        if len(v.type.tensor_type.shape.dim) > 0 and v.type.tensor_type.shape.dim[0].dim_param
    }
    shapes: dict[str, tuple[int, ...]] = {}
    for value in real:
        tensor_shape = value.type.tensor_type.shape
        rank = len(tensor_shape.dim)
        image_axes = (1, 2) if rank == 4 and _channels_last(tensor_shape) else (2, 3) if rank == 4 else ()
        image_axes = (3, 4) if rank == 5 else image_axes
        sequence_axes = (2,) if rank == 5 else tuple(range(1, rank)) if rank in (2, 3) else ()
        for axis, dim in enumerate(tensor_shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            if dim.HasField("dim_value"):
                raise ArchitectureError(
                    "invalid_shape",
                    f"input {value.name!r} declares dimension {dim.dim_value} on axis {axis}; dimensions must be positive "
                    "(leave a dimension symbolic to have it set from the request)",
                )
            named = named_length(dim.dim_param, options) if dim.dim_param else None
            if axis == 0 or (dim.dim_param and dim.dim_param in batch_names):
                fill = options.batch
            elif named is not None:
                fill = named
            elif axis in image_axes:
                fill = options.resolution
            elif axis in sequence_axes:
                fill = options.sequence_length
            else:
                fill = 1
                defaulted.append(f"{value.name} axis {axis}" + (f" ({dim.dim_param!r})" if dim.dim_param else ""))
            dim.Clear()
            dim.dim_value = fill
        dims = _dims(tensor_shape)
        if float(np.prod(dims, dtype=np.float64)) > options.max_elements:  # float: inf for absurd shapes
            raise ArchitectureError(
                "too_large", f"input {value.name!r} declares shape {list(dims)[:16]}, over {options.max_elements} elements"
            )
        shapes[value.name] = dims
    return shapes


def _channels_last(shape: onnx.TensorShapeProto) -> bool:
    """A 4-D image input laid out (N, H, W, C): height symbolic, channels fixed."""
    def fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
        return dim.HasField("dim_value") and dim.dim_value > 0

    return not fixed(shape.dim[1]) and fixed(shape.dim[3])


# memory traffic counts 4 bytes an element (the float32 convention) except for these types, at their own width
OWN_WIDTH_TYPES = {TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.INT8: 1,
                   TensorProto.UINT8: 1, TensorProto.INT4: 0.5, TensorProto.UINT4: 0.5}


def type_name(data_type: int) -> str:
    """``float32``, ``float16``, ``int8``, ... for an ONNX element type."""
    try:
        return str(helper.tensor_dtype_to_np_dtype(data_type).name)
    except (KeyError, TypeError, ValueError):
        return TensorProto.DataType.Name(data_type).lower() if data_type in TensorProto.DataType.values() else str(data_type)


def element_width(data_type: int | None) -> float:
    return OWN_WIDTH_TYPES.get(data_type, BYTES_PER_ELEMENT) if data_type is not None else BYTES_PER_ELEMENT


def _check_names(graph: onnx.GraphProto) -> None:
    """Protobuf hands back string fields that are not valid UTF-8 as bytes: refuse them before anything compares names."""
    names = [v.name for v in [*graph.input, *graph.output, *graph.initializer]]
    for node in graph.node:
        names += [node.op_type, node.name, node.domain, *node.input, *node.output]
    bad = next((name for name in names if not isinstance(name, str)), None)
    if bad is not None:
        raise ArchitectureError("invalid_onnx", f"the ONNX model has a name or op type that is not valid UTF-8: {bad[:40]!r}")


def _external_location(tensor: onnx.TensorProto) -> str | None:
    """The ``location`` of a tensor stored as external data; None for a tensor with its data inline."""
    if tensor.data_location != TensorProto.EXTERNAL:
        return None
    return next((entry.value for entry in tensor.external_data if entry.key == "location"), "")


def _is_unsafe_location(location: str) -> bool:
    """onnx.checker's rule: an external-data location must be relative and must not climb out with '..'."""
    parts = location.replace("\\", "/").split("/")
    return location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":") or ".." in parts


def inner_nodes(node: onnx.NodeProto) -> int:
    """The nodes inside a control-flow node's subgraphs (an If's branches, a Loop's or Scan's body), nested ones too."""
    total = 0
    for attr in node.attribute:
        for subgraph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            total += sum(1 + inner_nodes(child) for child in subgraph.node)
    return total


def _graph_tensors(graph: onnx.GraphProto, top: bool) -> Iterator[tuple[onnx.TensorProto, str, bool]]:
    """Every tensor of a graph and its subgraphs: (tensor, where, stripped) - stripped = a top-level initializer."""
    for tensor in graph.initializer:
        yield tensor, f"initializer {tensor.name!r}", top
    for sparse in graph.sparse_initializer:
        yield sparse.values, f"sparse initializer {sparse.values.name!r}", False
        yield sparse.indices, f"sparse initializer {sparse.values.name!r}", False
    for node in graph.node:
        for attr in node.attribute:
            where = f"attribute {attr.name!r} of node {node.name or node.op_type!r}"
            tensors = [attr.t, *attr.tensors, attr.sparse_tensor.values, attr.sparse_tensor.indices]
            tensors += [t for sparse in attr.sparse_tensors for t in (sparse.values, sparse.indices)]
            for tensor in tensors:
                yield tensor, where, False
            for subgraph in [attr.g, *attr.graphs]:
                yield from _graph_tensors(subgraph, top=False)


MAX_FUNCTION_DEPTH = 32  # local functions calling local functions: deeper chains are refused, not recursed into


def inline_functions(model: onnx.ModelProto, max_nodes: int) -> onnx.ModelProto:
    """The model with its local functions (``ModelProto.functions``) inlined, as onnxruntime runs it.

    An exporter may write a repeated block once as a function (torch's ``export_modules_as_functions``); its calls are
    nodes of a custom op type that no cost model knows, so without inlining a ResNet written that way read as 1 % of
    its FLOPs. The nodes inlining would give (calls expanded, subgraphs included) are counted first, so a function
    called inside a function cannot multiply a small upload past ``max_nodes``; a call cycle or a chain deeper than
    ``MAX_FUNCTION_DEPTH`` is refused.
    """
    if not model.functions:
        return model
    functions = {(f.domain, f.name, f.overload): f for f in model.functions}
    sizes: dict[tuple[str, str, str], int] = {}

    def body_size(key: tuple[str, str, str], depth: int) -> int:
        if key not in sizes:
            if depth > MAX_FUNCTION_DEPTH:
                raise ArchitectureError(
                    "invalid_onnx",
                    f"local function {key[1]!r} is called through more than {MAX_FUNCTION_DEPTH} levels (a call cycle?)",
                )
            sizes[key] = nodes_size(functions[key].node, depth + 1)
        return sizes[key]

    def nodes_size(nodes: Iterable[onnx.NodeProto], depth: int) -> int:
        total = 0
        for node in nodes:
            key = (node.domain, node.op_type, node.overload)
            total += body_size(key, depth) if key in functions else 1
            for attr in node.attribute:
                for subgraph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    total += nodes_size(subgraph.node, depth)
            if total > max_nodes:
                raise ArchitectureError(
                    "too_large", f"with its local functions inlined the ONNX graph has over {max_nodes} nodes, the limit"
                )
        return total

    nodes_size(model.graph.node, 0)
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises several internal error types on malformed functions
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ArchitectureError("invalid_onnx", f"inlining the local functions failed: {message}") from None


def check_external_data(model: onnx.ModelProto) -> None:
    """Refuse external-data references that could make any later step read a file.

    Absolute locations and ``..`` components are refused everywhere (``unsafe_external_data``); a benign relative
    location is accepted only on a top-level initializer, which is replaced by a graph input before anything reads it.
    Tensors elsewhere (Constant values, subgraph initializers) would be loaded by shape inference, so they are refused.
    """
    for tensor, where, stripped in _graph_tensors(model.graph, top=True):
        location = _external_location(tensor)
        if location is None:
            continue
        if _is_unsafe_location(location):
            raise ArchitectureError(
                "unsafe_external_data",
                f"{where} stores its data externally at {location[:200]!r}: absolute paths and '..' components are refused "
                "(external data must be a relative path beside the model; weights are never read)",
            )
        if not stripped:
            raise ArchitectureError(
                "unsafe_external_data",
                f"{where} stores its data externally at {location[:200]!r}; external data is accepted only for top-level "
                "initializers",
            )


def _strip_initializers(
    model: onnx.ModelProto, weights: set[str], weight_types: set[str]
) -> dict[str, tuple[int, ...]]:
    """Replace large (or external) initializers and large Constant nodes by typed inputs; returns their dims.

    Names of weights (``WEIGHT_TYPES``, counted as parameters) are added to ``weights``, and the element types of
    those over SMALL_INITIALIZER elements to ``weight_types``. Large Constant nodes are moved
    too: symbolic shape inference would otherwise decode their data into numpy arrays and lists (memory and time
    many times the upload's size).
    """
    graph = model.graph
    dims: dict[str, tuple[int, ...]] = {}
    kept = []
    moved = []
    constants = []
    for index, node in enumerate(graph.node):
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            continue
        value = next((a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR), None)
        if value is not None and float(np.prod(value.dims, dtype=np.float64)) > SMALL_INITIALIZER:
            constants.append(index)
            value.name = node.output[0]
            graph.initializer.append(value)  # handled (checked, moved, counted) with the initializers below
    for index in reversed(constants):
        del graph.node[index]
    for tensor in graph.initializer:
        shape = tuple(int(d) for d in tensor.dims)
        if float(np.prod(np.abs(shape), dtype=np.float64)) > MAX_INITIALIZER_ELEMENTS:
            raise ArchitectureError(
                "too_large",
                f"initializer {tensor.name!r} declares shape {list(shape)[:16]}, over {MAX_INITIALIZER_ELEMENTS} elements",
            )
        dims[tensor.name] = shape
        large = float(np.prod(shape, dtype=np.float64)) > SMALL_INITIALIZER
        if tensor.data_type in WEIGHT_TYPES:
            weights.add(tensor.name)
            if large:
                weight_types.add(type_name(tensor.data_type))
        external = tensor.data_location == TensorProto.EXTERNAL
        if external or large:
            moved.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(shape)))
        else:
            kept.append(tensor)
    existing = {v.name for v in graph.input}
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(v for v in moved if v.name not in existing)
    return dims


MAX_RANK = 64
SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1}  # op -> input giving the output's rank


def _check_shape_inputs(graph: onnx.GraphProto, constant_dims: dict[str, tuple[int, ...]]) -> None:
    """A constant shape input of over MAX_RANK values asks for a tensor of that rank: symbolic shape inference would
    make a symbol per dimension (a 1,000,000-value Reshape shape takes minutes), so it is refused."""
    for node in graph.node:
        position = SHAPE_INPUTS.get(node.op_type)
        if position is None or len(node.input) <= position:
            continue
        dims = constant_dims.get(node.input[position])
        if dims is not None and float(np.prod(dims, dtype=np.float64)) > MAX_RANK:
            raise ArchitectureError(
                "invalid_onnx",
                f"node {node.name or node.op_type!r}: input {node.input[position]!r} of shape {list(dims)[:8]} is not a "
                f"shape of at most {MAX_RANK} dimensions",
            )


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.INT:
            attrs[attr.name] = int(attr.i)
        elif attr.type == onnx.AttributeProto.FLOAT:
            attrs[attr.name] = float(attr.f) if np.isfinite(attr.f) else 0.0
        elif attr.type == onnx.AttributeProto.INTS:
            attrs[attr.name] = [int(v) for v in attr.ints][:16]
        elif attr.type == onnx.AttributeProto.STRING:
            limit = 256 if attr.name == "equation" else 32  # an Einsum's equation is read whole
            attrs[attr.name] = attr.s.decode("utf-8", "replace")[:limit]
    _check_attributes(node, attrs)
    return attrs


SIZE_LIST_ATTRS = frozenset({"kernel_shape", "strides", "dilations"})  # lists of sizes the cost model multiplies
INT_LIST_ATTRS = frozenset({"pads", "perm"})
SIZE_ATTRS = frozenset({"group"})
MAX_ATTR_SIZE = 2**31


def _check_attributes(node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Attributes the cost model and tokenizer read must have their ONNX types (and sizes in 1..2**31)."""
    for name, value in attrs.items():
        sizes = name in SIZE_LIST_ATTRS or name in SIZE_ATTRS
        wanted = list if name in SIZE_LIST_ATTRS or name in INT_LIST_ATTRS else int if name in SIZE_ATTRS else None
        if wanted is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not isinstance(value, wanted) or (sizes and not all(1 <= v <= MAX_ATTR_SIZE for v in values)):
            kind = "a list of integers" if wanted is list else "an integer"
            raise ArchitectureError(
                "invalid_onnx",
                f"node {node.name or node.op_type!r}: attribute {name!r} must be {kind}"
                + (f" in 1..{MAX_ATTR_SIZE}" if sizes else "") + f", got {str(value)[:60]}",
            )


MAX_SHAPE_DATA_ELEMENTS = 2**16  # largest ConstantOfShape output symbolic inference may materialise (shape tensors)


def _guard_constant_of_shape(ssi: Any) -> None:
    """Stop onnxruntime's symbolic inference from materialising big ConstantOfShape outputs.

    It fills every int64 ConstantOfShape output of known shape with ``np.ones``: a 143-byte model asking for
    [40000, 40000] would allocate 12.8 GB. Above MAX_SHAPE_DATA_ELEMENTS only the output's shape is set, as for any op.
    ``ssi`` is archcast's own copy of the module (``symbolic_shape_module``), patched once.
    """
    cls = ssi.SymbolicShapeInference
    original = getattr(cls, "_infer_ConstantOfShape", None)
    if original is None:
        return

    def guarded(self: Any, node: onnx.NodeProto) -> None:
        shape = self._get_int_or_float_values(node)[0]
        dims = shape if isinstance(shape, list) else [shape]
        literal = shape is not None and all(ssi.is_literal(d) for d in dims)
        if literal and math.prod(max(int(d), 0) for d in dims) > MAX_SHAPE_DATA_ELEMENTS:
            self._update_computed_dims(dims)
            vi = self.known_vi_[node.output[0]]
            shape_proto = ssi.get_shape_from_sympy_shape(dims)
            vi.CopyFrom(helper.make_tensor_value_info(node.output[0], vi.type.tensor_type.elem_type, shape_proto))
            return
        original(self, node)

    cls._infer_ConstantOfShape = guarded


def _symbolic_inference(cls: Any, model: onnx.ModelProto) -> onnx.ModelProto | None:
    """``SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)`` without its side effect:
    when inference is incomplete it saves the model (and external data files) into the working directory as
    sym_shape_infer_temp.onnx; here it just fails. None for opsets it does not support (below 7)."""
    if _opset(model) < 7:
        return None
    inference = cls(2**31 - 1, True, True, 0)  # int_max, auto_merge, guess_output_rank, verbose
    _infer_fused_products(inference)
    _propagate_mod(inference)
    inference._preprocess(model)
    complete = False
    while inference.run_:
        complete = inference._infer_impl()
    inference._update_output_from_vi()
    if not complete:
        raise RuntimeError("incomplete symbolic shape inference")
    return inference.out_mp_


def _propagate_mod(inference: Any) -> None:
    """Teach one symbolic inference the value of an integer ``Mod`` of known values (it has shapes for it, not values).

    torch's ``unflatten`` computes the dimension it splits as ``Mod(dim, rank)`` of constants, and
    ``nn.MultiheadAttention`` unflattens its packed q / k / v projection so in every block: without the value, the
    Reshape after it has a shape of unknown rank, symbolic inference stops (an assertion), onnx's own inference does not
    follow it either, and the attention products of a model exported with a dynamic batch had no shapes, hence no MACs.
    """

    def mod(node: onnx.NodeProto) -> None:
        floating = any(a.name == "fmod" and a.i for a in node.attribute)  # fmod=1: the sign of the dividend
        inference._compute_on_sympy_data(
            node, lambda v: math.fmod(v[0], v[1]) if floating else (v[0] % v[1] if v[1] else None)
        )

    inference.dispatcher_.setdefault("Mod", mod)


def _infer_fused_products(inference: Any) -> None:
    """Teach one symbolic inference the shapes of onnxruntime's ``FusedConv`` (a Conv's) and ``FusedMatMul`` (a MatMul's
    after its transA / transB), which onnxruntime writes into the optimized models it saves, and of the com.microsoft
    QLinear ops of statically quantized models (QOperator format): its inference knows none of them, and every
    shape after the first one it misses would stay unknown (no MACs)."""

    def fused_matmul(node: onnx.NodeProto) -> None:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        lhs, rhs = list(inference._get_shape(node, 0)), list(inference._get_shape(node, 1))
        if len(lhs) < 2 or len(rhs) < 2 or attrs.get("transBatchA", 0) or attrs.get("transBatchB", 0):
            raise RuntimeError("FusedMatMul with vectors or batch transposes: shape left to onnx inference")
        if attrs.get("transA", 0):
            lhs[-2:] = lhs[-1:-3:-1]
        if attrs.get("transB", 0):
            rhs[-2:] = rhs[-1:-3:-1]
        shape = [*inference._broadcast_shapes(lhs[:-2], rhs[:-2]), lhs[-2], rhs[-1]]
        dtype = inference.known_vi_[node.input[0]].type.tensor_type.elem_type
        inference.known_vi_[node.output[0]].CopyFrom(helper.make_tensor_value_info(node.output[0], dtype, shape))

    def fused_conv(node: onnx.NodeProto) -> None:
        conv = helper.make_node("Conv", list(node.input[:3]), [node.output[0]], name=node.name)
        conv.attribute.extend(a for a in node.attribute if a.name not in ("activation", "activation_params"))
        inference._onnx_infer_single_node(conv)
        inference._infer_Conv(conv)

    def set_shape(node: onnx.NodeProto, shape: list[Any], dtype_from: int) -> None:
        dtype = inference.known_vi_[node.input[dtype_from]].type.tensor_type.elem_type
        inference.known_vi_[node.output[0]].CopyFrom(helper.make_tensor_value_info(node.output[0], dtype, shape))

    def qlinear_pool(node: onnx.NodeProto) -> None:  # (N, C, 1, 1), or (N, 1, 1, C) when channels_last
        shape = list(inference._get_shape(node, 0))
        channels_last = any(a.name == "channels_last" and a.i for a in node.attribute)
        spatial = range(1, len(shape) - 1) if channels_last else range(2, len(shape))
        set_shape(node, [1 if axis in spatial else d for axis, d in enumerate(shape)], 0)

    def qlinear_concat(node: onnx.NodeProto) -> None:  # (Y_scale, Y_zero_point, then X, X_scale, X_zero_point per input)
        shapes = [list(inference._get_shape(node, i)) for i in range(2, len(node.input), 3)]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(shapes[0])
        out = list(shapes[0])
        out[axis] = sum(shape[axis] for shape in shapes)
        set_shape(node, out, 2)

    def qgemm(node: onnx.NodeProto) -> None:  # (A, a_scale, a_zero_point, B, ...) with transA / transB
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        a, b = list(inference._get_shape(node, 0)), list(inference._get_shape(node, 3))
        m = a[1] if attrs.get("transA", 0) else a[0]
        n = b[0] if attrs.get("transB", 0) else b[1]
        dtype = inference.known_vi_[node.output[0]].type.tensor_type.elem_type or TensorProto.FLOAT
        inference.known_vi_[node.output[0]].CopyFrom(helper.make_tensor_value_info(node.output[0], dtype, [m, n]))

    inference.dispatcher_["FusedConv"] = fused_conv
    inference.dispatcher_["FusedMatMul"] = fused_matmul
    for elementwise in ("QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax"):
        inference.dispatcher_.setdefault(elementwise, inference._pass_on_shape_and_type)
    inference.dispatcher_.setdefault("QLinearGlobalAveragePool", qlinear_pool)
    inference.dispatcher_.setdefault("QLinearConcat", qlinear_concat)
    inference.dispatcher_.setdefault("QGemm", qgemm)


@functools.cache
def symbolic_shape_module() -> Any:
    """onnxruntime's ``symbolic_shape_infer`` module, loaded from its own file. Importing it the usual way runs
    ``onnxruntime/tools/__init__.py``, which imports torch whenever torch is installed: 1.5 s on the first ONNX request,
    and torch inside the service, which must never load it. The module itself needs only numpy, onnx and sympy."""
    import onnxruntime

    path = onnxruntime.__file__.removesuffix("__init__.py") + "tools/symbolic_shape_infer.py"
    spec = importlib.util.spec_from_file_location("archcast_symbolic_shape_infer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"onnxruntime's symbolic shape inference is not at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _guard_constant_of_shape(module)
    return module


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shapes of every tensor: onnxruntime's symbolic shape inference (follows Shape -> Gather -> Concat -> Reshape
    chains that torch exports for ``x.view(b, g, c // g, h, w)``), falling back to onnx's own inference."""
    try:
        inferred = _symbolic_inference(symbolic_shape_module().SymbolicShapeInference, model)
        if inferred is not None:
            return inferred
    except Exception:  # noqa: BLE001, S110 - any failure falls back to onnx's inference below
        pass
    try:
        return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several internal error types on malformed graphs
        raise ArchitectureError("invalid_onnx", f"onnx shape inference failed: {str(exc).splitlines()[0][:300]}") from None


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference typed (values, inputs, outputs, kept initializers)."""
    types = {t.name: int(t.data_type) for t in model.graph.initializer}
    for value in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types.setdefault(value.name, int(value.type.tensor_type.elem_type))
    return types


def _widths(names: list[str], types: dict[str, int]) -> list[float] | None:
    """Bytes per element of these tensors, or None when all take the 4-byte convention (the float32 case)."""
    widths = [element_width(types.get(name)) for name in names]
    return widths if any(w != BYTES_PER_ELEMENT for w in widths) else None


def parse_onnx(data: bytes | onnx.ModelProto, options: ParseOptions | None = None) -> NetworkGraph:
    """Parse ONNX bytes (or a decoded model) into a NetworkGraph with shapes and per-node costs."""
    options = options or ParseOptions()
    started = time.perf_counter()
    model = decode_model(data) if isinstance(data, bytes | bytearray) else data
    model = inline_functions(model, options.max_nodes)
    graph = model.graph
    if len(graph.node) > options.max_nodes:
        raise ArchitectureError("too_large", f"the ONNX graph has {len(graph.node)} nodes, the limit is {options.max_nodes}")
    _check_names(graph)
    check_external_data(model)
    sort_nodes(graph)
    weight_constants: set[str] = set()  # names of constant weights (WEIGHT_TYPES: floats and 8- / 4-bit integers)
    weight_types: set[str] = set()
    initializer_dims = _strip_initializers(model, weight_constants, weight_types)
    _check_shape_inputs(graph, initializer_dims)
    defaulted: list[str] = []
    input_shapes = _fix_inputs(graph, set(initializer_dims), options, defaulted)
    inferred = infer_shapes(model)
    inferred_at = time.perf_counter()

    shapes: dict[str, tuple[int, ...]] = dict(initializer_dims)
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            shapes.setdefault(value.name, _dims(value.type.tensor_type.shape))
    shapes.update(input_shapes)
    types = _tensor_types(inferred)

    readers = Counter(name for node in inferred.graph.node for name in node.input if name)
    readers.update(value.name for value in inferred.graph.output)
    producer: dict[str, int] = {}
    constants: set[str] = set(initializer_dims)
    alias: dict[str, str] = {}
    nodes: list[NetNode] = []
    unknown = 0
    einsums = 0  # Einsum nodes read as their Transposes and MatMul
    control_flow: Counter[str] = Counter()  # If / Loop / Scan nodes by type, and the nodes inside them (not costed)
    inner = 0
    for proto in inferred.graph.node:
        if proto.op_type == "Constant":
            constants.update(proto.output)
            value = next((a.t for a in proto.attribute if a.name == "value"), None)
            if value is not None and value.data_type in WEIGHT_TYPES:
                weight_constants.update(proto.output)
                if float(np.prod(value.dims, dtype=np.float64)) > SMALL_INITIALIZER:
                    weight_types.add(type_name(value.data_type))
            continue
        inputs_resolved = [alias.get(name, name) for name in proto.input]
        if proto.op_type == "Identity" and len(proto.input) == 1:
            alias[proto.output[0]] = inputs_resolved[0]
            if inputs_resolved[0] in constants:
                constants.add(proto.output[0])
                if inputs_resolved[0] in weight_constants:
                    weight_constants.add(proto.output[0])
            continue
        if _removed_at_load(proto, readers):  # Dropout: onnxruntime drops it, as torch's eval-mode export does
            alias[proto.output[0]] = inputs_resolved[0]
            continue
        folded = _conv_of_batch_norm(proto, inputs_resolved, producer, nodes, readers, weight_constants)
        if folded is not None:  # onnxruntime folds it into the Conv, as torch's export does: the Conv gains a bias
            nodes[folded] = _with_bias(nodes[folded])
            alias[proto.output[0]] = inputs_resolved[0]
            continue
        preds = []
        in_shapes = []
        in_names = []
        weights = []
        by_position: list[tuple[int | None, bool, tuple[int, ...]]] = []  # (producer, is weight, shape) per position
        for position, name in enumerate(inputs_resolved):
            if not name:
                by_position.append((None, False, ()))
                continue
            shape = shapes.get(name, shapes.get(proto.input[position], ()))  # missing: no known shape
            in_shapes.append(shape)
            in_names.append(name)
            by_position.append((producer.get(name), name in weight_constants, tuple(shape)))
            if name in producer:
                preds.append(producer[name])
            elif name in constants:
                if name in weight_constants:
                    weights.append(position)
            elif name not in input_shapes:
                raise ArchitectureError(
                    "invalid_onnx",
                    f"node {proto.name or proto.op_type!r} reads {name!r}, which no node, input or initializer produces"
                )
        known = [shapes.get(name) for name in proto.output if name]
        out_shapes = tuple(shape if shape is not None else () for shape in known)
        for shape in known:
            if shape is None or any(d < 0 for d in shape):
                unknown += 1
            elif float(np.prod(shape, dtype=np.float64)) > options.max_elements:
                raise ArchitectureError(
                    "too_large",
                    f"node {proto.name or proto.op_type!r} produces shape {list(shape)}, over {options.max_elements} elements",
                )
        attrs = _attributes(proto)
        op_type = ir_op_type(proto.op_type, proto.domain)
        inside = inner_nodes(proto)
        if inside or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in proto.attribute):
            control_flow[op_type] += 1
            inner += inside
        name = proto.name or f"{op_type}_{len(nodes)}"
        out_names = [n for n in proto.output if n]
        operand_shapes = [s for _, _, s in by_position]
        parts = lower(proto.op_type, proto.domain, attrs, operand_shapes, out_shapes)
        if proto.op_type == "Einsum" and proto.domain in STANDARD_DOMAINS and out_shapes:
            parts = einsum_parts(attrs, operand_shapes, out_shapes[0])
            einsums += bool(parts)
        if parts:
            first = len(nodes)
            width = element_width(types.get(out_names[0])) if out_names else BYTES_PER_ELEMENT
            for part in parts:
                nodes.append(_part_node(part, name, first, by_position, width))
            for position, output in enumerate(proto.output):
                if output:
                    producer[output] = first + next(
                        (k for k, part in enumerate(parts) if position in part.produces), len(parts) - 1
                    )
            continue
        if weights:
            attrs["_weights"] = weights
        element_bytes = _widths(in_names + out_names, types)
        if element_bytes is not None:
            attrs["_element_bytes"] = element_bytes
        in_shapes_t = tuple(tuple(s) for s in in_shapes)
        cost = node_cost(op_type, in_shapes_t, out_shapes, attrs, weights, element_bytes)
        index = len(nodes)
        nodes.append(NetNode(name, op_type, tuple(sorted(set(preds))), in_shapes_t, out_shapes, attrs, cost))
        for output in out_names:
            producer[output] = index
    if not nodes:
        raise ArchitectureError("invalid_onnx", "the ONNX graph has no computation nodes (only constants)")
    nodes = fuse_layer_norms(nodes, {producer[v.name] for v in inferred.graph.output if v.name in producer})
    stats = {"shape_inference_s": inferred_at - started, "parse_s": time.perf_counter() - started}
    return NetworkGraph(
        tuple(nodes),
        input_shapes,
        _opset(model),
        model.producer_name,
        unknown,
        stats,
        tuple(sorted(weight_types)),
        dict(control_flow),
        inner,
        tuple(defaulted),
        einsums,
    )


def _removed_at_load(proto: onnx.NodeProto, readers: Counter[str]) -> bool:
    """A standard Dropout whose mask nobody reads: an identity at inference, removed by onnxruntime at load."""
    return (
        proto.op_type == "Dropout"
        and proto.domain in STANDARD_DOMAINS
        and bool(proto.input)
        and bool(proto.input[0])
        and all(not name or readers[name] == 0 for name in proto.output[1:])
    )


def _conv_of_batch_norm(
    proto: onnx.NodeProto,
    inputs: list[str],
    producer: dict[str, int],
    nodes: list[NetNode],
    readers: Counter[str],
    weights: set[str],
) -> int | None:
    """The index of the Conv an inference BatchNormalization folds into (onnxruntime's Conv+BatchNormalization
    fusion at load: the Conv's output read by this node only, scale / bias / mean / variance constant); else None."""
    if proto.op_type != "BatchNormalization" or proto.domain not in STANDARD_DOMAINS or len(inputs) != 5:
        return None
    if any(name and readers[name] for name in proto.output[1:]) or not all(name in weights for name in inputs[1:]):
        return None
    source = producer.get(inputs[0])
    if source is None or readers[inputs[0]] != 1 or nodes[source].op_type != "Conv":
        return None
    return source


def _with_bias(conv: NetNode) -> NetNode:
    """``conv`` as onnxruntime runs it once a BatchNormalization is folded in: with a bias of its output channels."""
    if len(conv.input_shapes) >= 3 or not conv.output_shapes or len(conv.output_shapes[0]) < 2:
        return conv
    in_shapes = (*conv.input_shapes, (conv.output_shapes[0][1],))
    attrs = {**conv.attrs, "_weights": [*conv.attrs.get("_weights", []), 2]}
    element_bytes = attrs.get("_element_bytes")
    if element_bytes is not None:
        element_bytes = [*element_bytes[: len(conv.input_shapes)], element_bytes[0], *element_bytes[len(conv.input_shapes) :]]
        attrs["_element_bytes"] = element_bytes
    cost = node_cost(conv.op_type, in_shapes, conv.output_shapes, attrs, attrs["_weights"], element_bytes)
    return replace(conv, input_shapes=in_shapes, attrs=attrs, cost=cost)


def _part_node(
    part: Part, name: str, first: int, by_position: list[tuple[int | None, bool, tuple[int, ...]]], width: float
) -> NetNode:
    """The IR node of one part of a lowered fused node (``model.onnx_contrib``) whose first part lands at ``first``."""
    preds: set[int] = set()
    weights = []
    for position, ref in enumerate(part.inputs):
        if ref == SCALAR:
            weights.append(position)
            continue
        if isinstance(ref, str):
            preds.add(first + int(ref[1:]))
            continue
        source, is_weight, _ = by_position[ref]
        if source is not None:
            preds.add(source)
        if is_weight:
            weights.append(position)
    attrs = dict(part.attrs)
    if weights:
        attrs["_weights"] = weights
    outs = (part.output_shape,)
    element_bytes = None
    if width != BYTES_PER_ELEMENT:
        element_bytes = [width] * (len(part.input_shapes) + 1)
        attrs["_element_bytes"] = element_bytes
    cost = node_cost(part.op_type, part.input_shapes, outs, attrs, weights, element_bytes)
    suffix = part.op_type.lower()
    return NetNode(f"{name}/{suffix}", part.op_type, tuple(sorted(preds)), part.input_shapes, outs, attrs, cost)
