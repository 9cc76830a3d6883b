"""The denormal probe of ``benchmarks.onnx_swin_denormals``: a -100 additive mask before a softmax leaves denormal
weights, a zero mask does not; the denormals-are-zero timing runs both sessions on the same model."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import model_from

from benchmarks.onnx_swin_denormals import daz_ratio, denormal_share


def masked_attention(mask_value: float) -> bytes:
    """logits x (1, 16) + mask (every other position masked with ``mask_value``) -> Softmax -> MatMul with v."""
    mask = np.zeros((1, 16), np.float32)
    mask[0, ::2] = mask_value
    weights = [numpy_helper.from_array(mask, "mask"), numpy_helper.from_array(np.ones((16, 4), np.float32), "v")]
    nodes = [
        helper.make_node("Add", ["x", "mask"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "v"], ["out"]),
    ]
    model = model_from(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        weights,
    )
    return model.SerializeToString()


def test_a_minus_100_mask_leaves_denormal_softmax_weights_and_a_zero_mask_none() -> None:
    masked = denormal_share(masked_attention(-100.0))
    assert masked["softmax_values"] == 16
    # the session feeds random normal logits: exp(-100 + x - max) lands below float32's smallest normal for masked ones
    assert masked["denormal_share"] == pytest.approx(0.5, abs=0.13)
    assert denormal_share(masked_attention(0.0)) == {"softmax_values": 16, "denormal_share": 0.0}
    # -1e4 (BERT-style) underflows to an exact zero: no denormals either
    assert denormal_share(masked_attention(-1e4))["denormal_share"] == 0.0


def test_the_daz_timing_reports_both_minima_and_their_ratio() -> None:
    result = daz_ratio(masked_attention(-100.0), rounds=2, runs=3)
    assert result["off_ms"] > 0 and result["on_ms"] > 0
    assert result["on_over_off"] == pytest.approx(result["on_ms"] / result["off_ms"])
