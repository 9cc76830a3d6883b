"""Post-LN Vision Transformers: ViT-style networks (``vit``'s sampler and constructor) whose LayerNorms follow their
residual ``Add``, as in BERT and the original Transformer.

onnxruntime's CPU optimiser fuses each such ``Add`` + ``LayerNormalization`` into one ``SkipLayerNormalization``
kernel, which runs slower on one thread than the two ops it replaces (``benchmarks/results/onnx_layernorm_fusion.md``);
pre-LN blocks, where the ``Add`` also feeds the next residual, are not fused. The text encoders were the only family
holding that kernel, so a predictor with them held out had never seen it (held-out post-LN text encoders read 18 %
fast, pre-LN ones 2 % slow). This family teaches it from images.
"""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.zoo import vit

NAME = "vitpost"


def sample(rng: random.Random) -> dict[str, Any]:
    return {**vit.sample(rng), "norm": "post"}


def build(spec: dict[str, Any]) -> nn.Module:
    return vit.ViT(spec)
