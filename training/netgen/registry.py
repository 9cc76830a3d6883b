"""One family name -> its spec sampler and its torch constructor (like timm's model registry).

Each module in ``training.netgen.zoo`` defines ``NAME``, ``sample(rng) -> dict`` (a JSON-serialisable spec that
always holds ``"resolution"``) and ``build(spec) -> nn.Module`` (input ``(batch, 3, resolution, resolution)``).
The spec alone regenerates the network: the dataset commits specs and measurements, never weights.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
ALL_FAMILY_MODULES: tuple[str, ...] = FAMILY_MODULES + DENSE_FAMILY_MODULES


@dataclass(frozen=True)
class Family:
    name: str
    sample: Callable[[random.Random], dict[str, Any]]
    build: Callable[[dict[str, Any]], nn.Module]


def family(name: str) -> Family:
    if name not in ALL_FAMILY_MODULES:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(ALL_FAMILY_MODULES)}")
    module = importlib.import_module(f"training.netgen.zoo.{name}")
    return Family(name=module.NAME, sample=module.sample, build=module.build)


def all_families() -> list[Family]:
    return [family(name) for name in ALL_FAMILY_MODULES]
