"""One family name -> its spec sampler and its torch constructor (like timm's model registry).

Each module in ``training.netgen.zoo`` defines ``NAME``, ``sample(rng) -> dict`` (a JSON-serialisable spec) and
``build(spec) -> nn.Module``. Image families' specs hold ``"resolution"`` and take ``(1, 3, resolution, resolution)``;
a family with another input (a sequence of features or of token ids, or a tuple of inputs: a decoder's token and KV
cache) also defines ``example_input(spec)``.
The spec alone regenerates the network: the dataset commits specs and measurements, never weights.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

FAMILY_MODULES: tuple[str, ...] = (
    "resnet",
    "vgg",
    "mobilenetv2",
    "mobilenetv3",
    "efficientnet",
    "mnasnet",
    "squeezenet",
    "inception",
    "densenet",
    "regnet",
    "shufflenet",
    "vit",
    "convnext",
    "swin",
)
# dense prediction (segmentation, detection): added to the datasets as an extension after the 14 classifiers
DENSE_FAMILY_MODULES: tuple[str, ...] = ("unet", "fpn", "deeplab", "yolo")
# sequence models (recurrent, transformer text encoders): a later extension; their input is no image
SEQUENCE_FAMILY_MODULES: tuple[str, ...] = ("rnn", "text")
# generation steps (a decoder's one token with its KV cache as inputs): a later extension still
GENERATION_FAMILY_MODULES: tuple[str, ...] = ("decoder",)
# variants of an earlier family that hold kernels no other image family does (post-LN blocks): after the decoders
VARIANT_FAMILY_MODULES: tuple[str, ...] = ("vitpost",)
# classifiers whose batch-1 time goes to reading fully connected weights no cache holds (AlexNet): after the variants
STREAMING_FAMILY_MODULES: tuple[str, ...] = ("alexnet",)
# the groups in the order the datasets grew: splits draw families group by group (``training.latency_data``)
FAMILY_GROUPS: tuple[tuple[str, ...], ...] = (
    FAMILY_MODULES,
    DENSE_FAMILY_MODULES,
    SEQUENCE_FAMILY_MODULES,
    GENERATION_FAMILY_MODULES,
    VARIANT_FAMILY_MODULES,
    STREAMING_FAMILY_MODULES,
)
ALL_FAMILY_MODULES: tuple[str, ...] = sum(FAMILY_GROUPS, ())
EXTENSION_FAMILY_MODULES: tuple[str, ...] = sum(FAMILY_GROUPS[1:], ())  # every family after the 14 classifiers


@dataclass(frozen=True)
class Family:
    name: str
    sample: Callable[[random.Random], dict[str, Any]]
    build: Callable[[dict[str, Any]], nn.Module]
    example_input: Callable[[dict[str, Any]], torch.Tensor | tuple[torch.Tensor, ...]]


def image_input(spec: dict[str, Any]) -> torch.Tensor:
    return torch.zeros(1, 3, int(spec["resolution"]), int(spec["resolution"]))


def family(name: str) -> Family:
    if name not in ALL_FAMILY_MODULES:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(ALL_FAMILY_MODULES)}")
    module = importlib.import_module(f"training.netgen.zoo.{name}")
    example = getattr(module, "example_input", image_input)
    return Family(name=module.NAME, sample=module.sample, build=module.build, example_input=example)


def all_families() -> list[Family]:
    return [family(name) for name in ALL_FAMILY_MODULES]
