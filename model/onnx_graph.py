"""ONNX -> whole-network IR: one node per op (weights are not nodes), attributes, shapes and costs.

Parsing never touches the file system: the model is decoded from bytes, tensors stored as external data are
used for their declared shapes only, and large initializers are replaced by typed graph inputs before onnx
shape inference (so a 100 MB upload is inferred as fast as a weight-free one). Symbolic input dimensions are
fixed from the request (batch, resolution) or defaults. Ops onnx cannot infer keep unknown (-1) dimensions
and zero cost rather than failing the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, shape_inference

from model.errors import ArchitectureError
from model.onnx_cost import NodeCost, node_cost

DEFAULT_MAX_NETWORK_NODES = 4096
DEFAULT_MAX_ELEMENTS = 2**31  # per tensor: guards against giant declared dimensions
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkGraph:
        nodes = []
        for i, (op_type, inputs, in_shapes, out_shapes, attrs) in enumerate(data["nodes"]):
            in_s = tuple(tuple(s) for s in in_shapes)
            out_s = tuple(tuple(s) for s in out_shapes)
            weights = attrs.get("_weights", [])
            nodes.append(
                NetNode(f"n{i}", op_type, tuple(inputs), in_s, out_s, attrs, node_cost(op_type, in_s, out_s, attrs, weights))
            )
        return cls(tuple(nodes), {k: tuple(v) for k, v in data["input_shapes"].items()}, int(data["opset"]))


@dataclass(frozen=True)
class ParseOptions:
    batch: int = 1
    resolution: int = 224
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


def _fix_inputs(graph: onnx.GraphProto, initializer_names: set[str], options: ParseOptions) -> dict[str, tuple[int, ...]]:
    """Set symbolic dims of the real inputs: axis 0 = batch, image axes = resolution, others = 1."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in graph.input:
        if value.name in initializer_names or not value.type.HasField("tensor_type"):
            continue
        tensor_shape = value.type.tensor_type.shape
        rank = len(tensor_shape.dim)
        for axis, dim in enumerate(tensor_shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            fill = options.batch if axis == 0 else options.resolution if rank == 4 and axis >= 2 else 1
            dim.Clear()
            dim.dim_value = fill
        dims = _dims(tensor_shape)
        if int(np.prod(dims, dtype=np.float64)) > options.max_elements:
            raise ArchitectureError(
                "too_large", f"input {value.name!r} declares shape {list(dims)}, over {options.max_elements} elements"
            )
        shapes[value.name] = dims
    return shapes


FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


def _strip_initializers(model: onnx.ModelProto, weights: set[str]) -> dict[str, tuple[int, ...]]:
    """Replace large (or external) initializers by typed inputs; returns every initializer's dims.

    Names of floating-point initializers (the ones counted as parameters) are added to ``weights``.
    """
    graph = model.graph
    dims: dict[str, tuple[int, ...]] = {}
    kept = []
    moved = []
    for tensor in graph.initializer:
        shape = tuple(int(d) for d in tensor.dims)
        dims[tensor.name] = shape
        if tensor.data_type in FLOAT_TYPES:
            weights.add(tensor.name)
        external = tensor.data_location == TensorProto.EXTERNAL
        if external or int(np.prod(shape, dtype=np.float64)) > SMALL_INITIALIZER:
            moved.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(shape)))
        else:
            kept.append(tensor)
    existing = {v.name for v in graph.input}
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend(v for v in moved if v.name not in existing)
    return dims


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
            attrs[attr.name] = attr.s.decode("utf-8", "replace")[:32]
    return attrs


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shapes of every tensor: onnxruntime's symbolic shape inference (follows Shape -> Gather -> Concat -> Reshape
    chains that torch exports for ``x.view(b, g, c // g, h, w)``), falling back to onnx's own inference."""
    # imported here: onnxruntime.tools imports torch when it is installed, and the service must not load torch at start-up
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
        if inferred is not None:
            return inferred
    except Exception:  # noqa: BLE001, S110 - any failure falls back to onnx's inference below
        pass
    try:
        return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises several internal error types on malformed graphs
        raise ArchitectureError("invalid_onnx", f"onnx shape inference failed: {str(exc).splitlines()[0][:300]}") from None


def parse_onnx(data: bytes | onnx.ModelProto, options: ParseOptions | None = None) -> NetworkGraph:
    """Parse ONNX bytes (or a decoded model) into a NetworkGraph with shapes and per-node costs."""
    options = options or ParseOptions()
    started = time.perf_counter()
    model = decode_model(data) if isinstance(data, bytes | bytearray) else data
    graph = model.graph
    if len(graph.node) > options.max_nodes:
        raise ArchitectureError("too_large", f"the ONNX graph has {len(graph.node)} nodes, the limit is {options.max_nodes}")
    float_constants: set[str] = set()
    initializer_dims = _strip_initializers(model, float_constants)
    input_shapes = _fix_inputs(graph, set(initializer_dims), options)
    inferred = infer_shapes(model)
    inferred_at = time.perf_counter()

    shapes: dict[str, tuple[int, ...]] = dict(initializer_dims)
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            shapes.setdefault(value.name, _dims(value.type.tensor_type.shape))
    shapes.update(input_shapes)

    producer: dict[str, int] = {}
    constants: set[str] = set(initializer_dims)
    alias: dict[str, str] = {}
    nodes: list[NetNode] = []
    unknown = 0
    for proto in inferred.graph.node:
        if proto.op_type == "Constant":
            constants.update(proto.output)
            value = next((a.t for a in proto.attribute if a.name == "value"), None)
            if value is not None and value.data_type in FLOAT_TYPES:
                float_constants.update(proto.output)
            continue
        inputs_resolved = [alias.get(name, name) for name in proto.input]
        if proto.op_type == "Identity" and len(proto.input) == 1:
            alias[proto.output[0]] = inputs_resolved[0]
            if inputs_resolved[0] in constants:
                constants.add(proto.output[0])
                if inputs_resolved[0] in float_constants:
                    float_constants.add(proto.output[0])
            continue
        preds = []
        in_shapes = []
        weights = []
        for position, name in enumerate(inputs_resolved):
            if not name:
                continue
            shape = shapes.get(name, shapes.get(proto.input[position], ()))  # missing: no known shape
            in_shapes.append(shape)
            if name in producer:
                preds.append(producer[name])
            elif name in constants:
                if name in float_constants:
                    weights.append(position)
            elif name not in input_shapes:
                raise ArchitectureError(
                    "invalid_onnx",
                    f"node {proto.name or proto.op_type!r} reads {name!r}, which no earlier node, input or initializer "
                    "produces (the graph is cyclic or not topologically sorted)",
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
        if weights:
            attrs["_weights"] = weights
        in_shapes_t = tuple(tuple(s) for s in in_shapes)
        cost = node_cost(proto.op_type, in_shapes_t, out_shapes, attrs, weights)
        index = len(nodes)
        nodes.append(
            NetNode(
                proto.name or f"{proto.op_type}_{index}",
                proto.op_type,
                tuple(sorted(set(preds))),
                in_shapes_t,
                out_shapes,
                attrs,
                cost,
            )
        )
        for name in proto.output:
            if name:
                producer[name] = index
    if not nodes:
        raise ArchitectureError("invalid_onnx", "the ONNX graph has no computation nodes (only constants)")
    stats = {"shape_inference_s": inferred_at - started, "parse_s": time.perf_counter() - started}
    return NetworkGraph(tuple(nodes), input_shapes, _opset(model), model.producer_name, unknown, stats)
