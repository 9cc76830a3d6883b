"""Building blocks shared by the generated families: conv-BN-activation, squeeze-excitation, rounding helpers."""

from __future__ import annotations

import random

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without going more than 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: str | None = "relu", dilation: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, dilation * (kernel // 2), dilation, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act is not None:
        layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int, gate: str = "sigmoid", act: str = "relu") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, max(8, squeezed), 1)
        self.act = ACTIVATIONS[act]()
        self.expand = nn.Conv2d(max(8, squeezed), channels, 1)
        self.gate = nn.Hardsigmoid() if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x):  # noqa: ANN001, ANN201
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class ClassifierHead(nn.Module):
    """Global average pool, flatten, optional hidden layer, linear classifier."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 0, act: str = "relu") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(channels, hidden), ACTIVATIONS[act]()]
            channels = hidden
        layers.append(nn.Linear(channels, num_classes))
        self.fc = nn.Sequential(*layers)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.fc(self.pool(x).flatten(1))


def choose_resolution(rng: random.Random, step: int = 32, low: int = 96, high: int = 256) -> int:
    return rng.randrange(low, high + 1, step)


def num_classes(rng: random.Random) -> int:
    return rng.choice([10, 100, 1000])


class InvertedResidual(nn.Module):
    """MobileNetV2/V3, MnasNet and EfficientNet block: 1x1 expand, kxk depthwise, optional SE, 1x1 project."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        expand: float,
        act: str = "relu6",
        se_ratio: float = 0.0,
        se_gate: str = "sigmoid",
        se_base: int | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        hidden = make_divisible(c_in * expand)
        layers: list[nn.Module] = []
        if hidden != c_in:
            layers.append(conv_bn(c_in, hidden, 1, act=act))
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act, dilation=dilation))
        if se_ratio:
            se_act = "relu" if se_gate == "hsigmoid" else act
            layers.append(SqueezeExcite(hidden, make_divisible((se_base or hidden) * se_ratio), se_gate, se_act))
        layers.append(conv_bn(hidden, c_out, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):  # noqa: ANN001, ANN201
        out = self.body(x)
        return x + out if self.residual else out


class MobileNet(nn.Module):
    """A stem, a list of inverted-residual stages ``[expand, c_out, repeats, stride, kernel, se_ratio, act]``, a head."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        stem_act = spec.get("stem_act", "relu6")
        c_in = spec["stem"]
        layers: list[nn.Module] = [conv_bn(3, c_in, 3, 2, act=stem_act)]
        for expand, c_out, repeats, stride, kernel, se_ratio, act in spec["stages"]:
            for i in range(repeats):
                layers.append(
                    InvertedResidual(
                        c_in,
                        c_out,
                        kernel,
                        stride if i == 0 else 1,
                        expand,
                        act,
                        se_ratio,
                        spec.get("se_gate", "sigmoid"),
                        c_in if spec.get("se_on_input") else None,
                    )
                )
                c_in = c_out
        last = spec["last"]
        layers.append(conv_bn(c_in, last, 1, act=spec.get("head_act", "relu6")))
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(last, spec["num_classes"], hidden=spec.get("hidden", 0), act=spec.get("head_act", "relu6"))

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.head(self.features(x))


def scale_stages(stages: list[list], width: float, depth: float, divisor: int = 8) -> list[list]:
    return [[e, make_divisible(c * width, divisor), max(1, round(n * depth)), s, k, se, a] for e, c, n, s, k, se, a in stages]


class MultiHeadAttention(nn.Module):
    """Explicit attention (Linear qkv, reshape/transpose, MatMul, Softmax, MatMul), so ONNX shows every op.

    ``bias`` (heads, N, N), when given, is added to the attention logits (Swin's relative position bias).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, bias=None):  # noqa: ANN001, ANN201
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        if bias is not None:
            logits = logits + bias
        out = logits.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
