"""A two-operand ``Einsum`` written as the Transposes and the (batched) MatMul it computes.

Exporters write attention and linear layers as ``Einsum`` too (``torch.einsum("bnhd,bmhd->bhnm", q, k)``, JAX / TF
models converted to ONNX). Read as one opaque node it had no MACs, and its op type was one no training network had:
a four-block attention written with ``Einsum`` was predicted at 0.2 GMACs instead of 0.28. onnxruntime runs a
two-operand contraction as a MatMul over operands transposed into (batch, M, K) and (batch, K, N) order, and
transposes the product back when the output asks for another order, which is what a torch ``@`` export spells out
node by node. So the parser reads it as those nodes: the index letters in both operands and the output are the
batch, those in one operand and the output are M (left) or N (right), those in both operands only are contracted
(K). Each operand is transposed only if its letters are not in that order already.

An equation outside that shape (one or three operands, an ellipsis, a letter repeated within an operand, a letter
summed out of one operand alone, unknown or mismatched sizes) is left an ``Einsum`` node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from model.onnx_contrib import Part, Ref

Shape = tuple[int, ...]


def _letters(equation: str) -> tuple[list[str], str] | None:
    """(operand letter strings, output letters), the output implicit when ``->`` is absent; None if unsupported."""
    equation = equation.replace(" ", "")
    if "." in equation or not equation:
        return None
    lhs, arrow, rhs = equation.partition("->")
    operands = lhs.split(",")
    if not arrow:  # numpy's implicit output: the letters that appear once, in alphabetical order
        rhs = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    if not all(term.isalpha() for term in [*operands, rhs] if term):
        return None
    return operands, rhs


def _transposed(ref: Ref, letters: str, shape: Shape, order: str, parts: list[Part]) -> Ref:
    """``ref`` with its axes in ``order``: a Transpose part when they are not already."""
    perm = [letters.index(c) for c in order]
    if perm == sorted(perm):
        return ref
    parts.append(Part("Transpose", (ref,), (shape,), tuple(shape[p] for p in perm), {"perm": perm}))
    return f"p{len(parts) - 1}"


def einsum_parts(attrs: dict[str, Any], shapes: Sequence[Shape], out: Shape) -> list[Part]:
    """The Transpose / MatMul parts a two-operand Einsum computes; empty when the equation is not such a product."""
    parsed = _letters(str(attrs.get("equation", "")))
    if parsed is None or len(shapes) != 2:
        return []
    (left, right), result = parsed
    if any(len(set(term)) != len(term) for term in (left, right, result)) or set(result) - set(left + right):
        return []
    if any(len(term) != len(shape) for term, shape in ((left, shapes[0]), (right, shapes[1]), (result, out))):
        return []
    size: dict[str, int] = {}
    for term, shape in ((left, shapes[0]), (right, shapes[1]), (result, out)):
        for letter, dim in zip(term, shape, strict=True):
            if dim <= 0 or size.setdefault(letter, dim) != dim:
                return []  # unknown, or broadcast (size 1 against n): left to onnxruntime's own Einsum
    batch = [c for c in result if c in left and c in right]
    rows = [c for c in result if c in left and c not in right]
    cols = [c for c in result if c in right and c not in left]
    inner = [c for c in left if c in right and c not in result]
    if len(batch) + len(rows) + len(inner) != len(left) or len(batch) + len(cols) + len(inner) != len(right):
        return []  # a letter summed out of one operand alone: a reduction, not a product
    parts: list[Part] = []
    a = _transposed(0, left, shapes[0], "".join(batch + rows + inner), parts)
    b = _transposed(1, right, shapes[1], "".join(batch + inner + cols), parts)
    lead = tuple(size[c] for c in batch)
    m, k, n = (math.prod(size[c] for c in group) for group in (rows, inner, cols))
    product_shape = (*lead, m, n)
    parts.append(Part("MatMul", (a, b), ((*lead, m, k), (*lead, k, n)), product_shape))
    natural = "".join(batch + rows + cols)
    if natural != result:
        natural_shape = tuple(size[c] for c in natural)
        perm = [natural.index(c) for c in result]
        parts.append(Part("Transpose", (f"p{len(parts) - 1}",), (natural_shape,), out, {"perm": perm}))
    return parts
