"""onnxruntime's fused contrib ops written back as the standard ops they fuse, so an optimized model parses like its source.

A pipeline may upload the ``model.opt.onnx`` onnxruntime saves after its graph optimizations instead of the export
itself. Its convolutions are then ``FusedConv`` (convolution, residual add and activation in one node), its attention
products ``FusedMatMul`` (transpose and scale folded in), its GELUs and residual layer norms ``Gelu`` and
``SkipLayerNormalization``, all in the ``com.microsoft`` domain. Read as they are, they are op types no training
network had, with no MACs: an optimized ResNet-18 was predicted 35x too fast. onnxruntime applies the same fusions
to the export when it loads it, so the export's ops are what the predictor knows and what the model runs as:
``lower`` returns the standard ops each fused node stands for (their shapes from the fused node's), and the parser
puts them in its place. Costs then add up to the export's.

The same goes for the one-node ``Gelu`` of opset 20, which torch's default (dynamo) exporter writes: onnxruntime runs
the five-node pattern of older exports as the same kernel, so it is read as that pattern.

Layout-specific optimizations (the ``com.microsoft.nchwc`` domain, written at onnxruntime's highest level for one CPU)
are not lowered: their tensors are in a blocked layout, so the parser names them with their domain and the answer
warns. Quantized ops (``QLinearConv``, ``ConvInteger``, ...) stay as they are: they are other kernels, not fusions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ORT_DOMAIN = "com.microsoft"
LAYOUT_DOMAIN = "com.microsoft.nchwc"  # onnxruntime's blocked-layout ops, written at ORT_ENABLE_ALL for one CPU
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
ACTIVATIONS = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid", "Elu", "Selu", "Softplus"})

Shape = tuple[int, ...]
Ref = int | str  # an input position of the fused node (int), "p<k>": the output of the k-th part, or SCALAR
SCALAR = "scalar"  # a float scalar constant (an exported Constant: a one-element weight)


@dataclass(frozen=True)
class Part:
    """One standard op standing for (part of) a fused node."""

    op_type: str
    inputs: tuple[Ref, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    attrs: dict[str, Any] = field(default_factory=dict)
    produces: tuple[int, ...] = ()  # output positions of the fused node this part computes


def ir_op_type(op_type: str, domain: str) -> str:
    """The op type the IR records: standard and com.microsoft ops by name, other domains qualified (``nchwc.Conv``)."""
    if domain in STANDARD_DOMAINS or domain == ORT_DOMAIN:
        return op_type
    return f"{domain.removeprefix('com.microsoft.')}.{op_type}"


def _swap_last(shape: Shape) -> Shape:
    return (*shape[:-2], shape[-1], shape[-2]) if len(shape) >= 2 else shape


def _fused_conv(attrs: dict[str, Any], shapes: Sequence[Shape], out: Shape) -> list[Part]:
    conv_attrs = {k: v for k, v in attrs.items() if k not in ("activation", "activation_params")}
    n_conv = min(len(shapes), 3)
    parts = [Part("Conv", tuple(range(n_conv)), tuple(shapes[:n_conv]), out, conv_attrs)]
    if len(shapes) > 3 and shapes[3]:  # Z: added to the convolution before the activation
        parts.append(Part("Add", ("p0", 3), (out, shapes[3]), out))
    activation = str(attrs.get("activation", ""))
    if activation in ACTIVATIONS:
        scalars = (SCALAR, SCALAR) if activation == "Clip" else ()  # Clip's min and max are constant inputs
        parts.append(Part(activation, (f"p{len(parts) - 1}", *scalars), (out, *(() for _ in scalars)), out))
    elif activation:
        return []
    return parts


def _fused_matmul(attrs: dict[str, Any], shapes: Sequence[Shape], out: Shape) -> list[Part]:
    """alpha * op(A) @ op(B): the scale on A first (torch exports ``(q * scale) @ k^T``), then each transpose."""
    if attrs.get("transBatchA", 0) or attrs.get("transBatchB", 0) or len(shapes) < 2:
        return []
    parts: list[Part] = []
    operands: list[Ref] = [0, 1]
    operand_shapes: list[Shape] = [shapes[0], shapes[1]]
    if float(attrs.get("alpha", 1.0)) != 1.0:
        parts.append(Part("Mul", (0, SCALAR), (shapes[0], ()), shapes[0]))
        operands[0] = "p0"
    for position, name in ((0, "transA"), (1, "transB")):
        if attrs.get(name, 0):
            parts.append(Part("Transpose", (operands[position],), (operand_shapes[position],), _swap_last(shapes[position])))
            operands[position] = f"p{len(parts) - 1}"
            operand_shapes[position] = _swap_last(shapes[position])
    parts.append(Part("MatMul", tuple(operands), tuple(operand_shapes), out))
    return parts


def _gelu(first: Ref, shape: Shape, parts: list[Part]) -> list[Part]:
    """x * 0.5 * (1 + erf(x / sqrt(2))), node for node as torch exports ``nn.GELU`` at opsets below 20."""
    k = len(parts)
    return parts + [
        Part("Div", (first, SCALAR), (shape, ()), shape),
        Part("Erf", (f"p{k}",), (shape,), shape),
        Part("Add", (f"p{k + 1}", SCALAR), (shape, ()), shape),
        Part("Mul", (first, f"p{k + 2}"), (shape, shape), shape),
        Part("Mul", (f"p{k + 3}", SCALAR), (shape, ()), shape),
    ]


def _gelu_with_bias(shapes: Sequence[Shape], out: Shape) -> list[Part]:
    if len(shapes) > 1 and shapes[1]:  # BiasGelu / FastGelu with a bias: the bias add comes first
        return _gelu("p0", out, [Part("Add", (0, 1), (shapes[0], shapes[1]), out)])
    return _gelu(0, out, [])


def _skip_layer_norm(attrs: dict[str, Any], shapes: Sequence[Shape], outs: Sequence[Shape]) -> list[Part]:
    if len(shapes) < 3:
        return []
    out = outs[0]
    parts = [Part("Add", (0, 1), (shapes[0], shapes[1]), out, produces=(3,))]
    if len(shapes) > 4 and shapes[4]:  # bias, added after the skip
        parts = [Part("Add", (0, 1), (shapes[0], shapes[1]), out), Part("Add", ("p0", 4), (out, shapes[4]), out, produces=(3,))]
    norm_inputs: tuple[Ref, ...] = (f"p{len(parts) - 1}", 2, *((3,) if len(shapes) > 3 and shapes[3] else ()))
    norm_shapes = (out, *(shapes[i] for i in norm_inputs[1:]))  # type: ignore[index]
    epsilon = {"epsilon": attrs["epsilon"]} if "epsilon" in attrs else {}
    parts.append(Part("LayerNormalization", norm_inputs, norm_shapes, out, {"axis": -1, **epsilon}, produces=(0, 1, 2)))
    return parts


def lower(op_type: str, domain: str, attrs: dict[str, Any], shapes: Sequence[Shape], outs: Sequence[Shape]) -> list[Part]:
    """The standard ops a com.microsoft fused node (or opset 20's ``Gelu``) stands for, in order; empty when it is not
    one (or its shapes or attributes are not the ones lowered). Parts produce the fused node's outputs they name, the
    last one the rest."""
    if not outs or not shapes:
        return []
    out = outs[0]
    if domain in STANDARD_DOMAINS and op_type == "Gelu":  # opset 20's Gelu, as torch's dynamo exporter writes it
        return _gelu(0, out, [])
    if domain != ORT_DOMAIN:
        return []
    if op_type == "FusedConv":
        return _fused_conv(attrs, shapes, out)
    if op_type == "FusedMatMul":
        return _fused_matmul(attrs, shapes, out)
    if op_type in ("Gelu", "FastGelu", "BiasGelu"):
        return _gelu_with_bias(shapes, out)
    if op_type == "QuickGelu":  # x * sigmoid(alpha * x): SiLU / Swish (alpha 1) as torch exports it, Sigmoid then Mul
        alpha = float(attrs.get("alpha", 1.0))
        scaled: list[Part] = [] if alpha == 1.0 else [Part("Mul", (0, SCALAR), (out, ()), out)]
        source: Ref = "p0" if scaled else 0
        k = len(scaled)
        return [*scaled, Part("Sigmoid", (source,), (out,), out), Part("Mul", (0, f"p{k}"), (out, out), out)]
    if op_type == "SkipLayerNormalization":
        return _skip_layer_norm(attrs, shapes, outs)
    return []
