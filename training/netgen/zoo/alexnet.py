"""AlexNet-style classifiers (AlexNet, CaffeNet, ZFNet): a large-kernel stride-4 stem and a 5x5 convolution, one to
three 3x3 convolutions, max-pooling between, and the fully connected head on the flattened grid (two hidden layers
or one, 512-4096 wide).

At batch 1 that head is a chain of matrix-vector products whose weights (AlexNet's: 234 MB) are read once per run
and outgrow every cache, so they run at the memory's speed; no other image family spends its time that way. A
language model's generation step (``decoder``) is made of such products, and with it held out nothing taught them:
held out of 21 families, decoders whose weights exceed 32 MB read 1.6-1.8x fast, those under 16 MB within 8 %.
``canonical()``'s ``alexnet`` is torchvision's AlexNet (61,100,840 parameters).
"""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from training.netgen.blocks import choose_resolution, num_classes

NAME = "alexnet"
MAX_HEAD_WEIGHTS = 60_000_000  # like the decoders' cap: at most ~240 MB of fully connected weights


def _stem_padding(stem_kernel: int) -> int:
    return 2 if stem_kernel == 11 else stem_kernel // 2  # AlexNet's 11x11 stem pads 2


def _grid(resolution: int, stem_kernel: int) -> int:
    """Side of the feature grid the head flattens: stem (stride 4), then three 3x3 stride-2 max-pools."""
    side = (resolution + 2 * _stem_padding(stem_kernel) - stem_kernel) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1
    return side


def _widths(spec: dict[str, Any]) -> list[int]:
    """Output channels of the convolutions: w, 3w, then 6w, 4w, 4w cut to ``convs3`` (torchvision's 64-192-384-256-256)."""
    w = spec["width"]
    return [w, 3 * w, *[6 * w, 4 * w, 4 * w][-spec["convs3"] :]]


def _flat_features(spec: dict[str, Any]) -> int:
    """Inputs of the head's first fully connected layer: the last convolution's channels over the flattened grid."""
    return _widths(spec)[-1] * _grid(spec["resolution"], spec["stem_kernel"]) ** 2


def _head_weights(spec: dict[str, Any]) -> int:
    hidden = spec["hidden"]
    return _flat_features(spec) * hidden + (spec["fc_layers"] - 1) * hidden * hidden + hidden * spec["num_classes"]


def build(spec: dict[str, Any]) -> nn.Module:
    widths, k = _widths(spec), spec["stem_kernel"]
    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], k, stride=4, padding=_stem_padding(k)), nn.ReLU()]
    layers += [nn.MaxPool2d(3, 2), nn.Conv2d(widths[0], widths[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)]
    for c_in, c_out in zip(widths[1:-1], widths[2:], strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
    layers += [nn.MaxPool2d(3, 2), nn.Flatten()]
    features = _flat_features(spec)
    head: list[nn.Module] = []
    for _ in range(spec["fc_layers"]):
        head += [nn.Linear(features, spec["hidden"]), nn.ReLU()]
        features = spec["hidden"]
    return nn.Sequential(*layers, *head, nn.Linear(features, spec["num_classes"]))


def sample(rng: random.Random) -> dict[str, Any]:
    spec = {
        "resolution": choose_resolution(rng),
        "num_classes": num_classes(rng),
        "stem_kernel": rng.choice([7, 11]),
        "width": rng.choice([32, 48, 64, 96]),
        "convs3": rng.randint(1, 3),
        "hidden": rng.choice([512, 1024, 2048, 4096]),
        "fc_layers": rng.choice([1, 2, 2]),
    }
    while spec["hidden"] > 512 and _head_weights(spec) > MAX_HEAD_WEIGHTS:
        spec["hidden"] //= 2
    return spec


def canonical() -> list[dict[str, Any]]:
    return [{"name": "alexnet", "resolution": 224, "num_classes": 1000, "stem_kernel": 11, "width": 64, "convs3": 3,
             "hidden": 4096, "fc_layers": 2}]  # fmt: skip
