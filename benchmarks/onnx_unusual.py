"""Networks unlike any training network, on any CPU: where the shipped whole-network predictor holds, where it does
not, and whether its warnings say so.

    python -m benchmarks.onnx_unusual --out benchmarks/results/onnx_unusual

Users send what their work needs, not what a dataset sampled: a batch of 8, a 512-pixel input, a video network's
Conv3d, a GPT decoder with a causal mask, a Llama-style decoder (RMSNorm, rotary embeddings, gated MLP), a speech
model's wide Conv1d kernels, a 31 x 31 depthwise convolution (RepLKNet-style), a PointNet's max over points, attention
written with ``Einsum``, a super-resolution network's ``DepthToSpace``, a style-transfer network's instance norms and
reflection padding. Each is written here in torch and exported like the dataset's networks (opset 17, float32, BN
folded).

The predictor's device is one CPU; this benchmark runs on whichever CPU is at hand. So the 19 canonical classifiers of
``benchmarks/onnx_realworld.py`` are measured in the same passes, and their median measured / predicted ratio (the
speed of this CPU against the predictor's device) scales every prediction: a network's error is the one left after
that factor, read against the canonical networks' own spread around it. All networks are measured in ``--passes``
passes over the whole set, each in its own shuffled order, minimum kept.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.machine import describe_machine
from benchmarks.onnx_realworld import canonical_networks
from benchmarks.report import write_report
from model.card import PREDICTOR_DIR
from model.onnx_graph import ParseOptions
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.routers.predict_onnx import choose_network_predictor
from training.netgen.export import build_network, export_onnx_bytes, export_with_input
from training.netgen.measure import cpu_signature, measure_pass


class VideoNet(nn.Module):
    """R3D-style: four stages of two 3x3x3 Conv3d, 8 frames of 112 x 112."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout, stride in ((32, (1, 2, 2)), (64, (2, 2, 2)), (128, (2, 2, 2)), (256, (2, 2, 2))):
            layers += [nn.Conv3d(cin, cout, 3, stride, 1), nn.BatchNorm3d(cout), nn.ReLU()]
            layers += [nn.Conv3d(cout, cout, 3, 1, 1), nn.BatchNorm3d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(256, 400)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3, 4)))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class Decoder(nn.Module):
    """GPT-style: token and position embeddings, 6 causal blocks of width 384, a tied-size vocabulary head."""

    def __init__(self, dim: int = 384, heads: int = 6, depth: int = 6, vocab: int = 8000, tokens: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[DecoderBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(tokens) + self.position)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(rotate(q, cos, sin), rotate(k, cos, sin), v, is_causal=True)
        x = x + self.o(out.transpose(1, 2).reshape(b, n, d))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    """Llama-style decoder: RMSNorm, rotary position embeddings, SiLU-gated MLP, causal attention; 4 blocks of width
    512, 256 tokens, an 8,000-word head."""

    def __init__(self, dim: int = 512, heads: int = 8, depth: int = 4, vocab: int = 8000, tokens: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(LlamaBlock(dim, heads, 1376) for _ in range(depth))
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        angles = torch.arange(tokens)[:, None] / 10000 ** (torch.arange(0, dim // heads, 2) / (dim // heads))
        angles = torch.cat((angles, angles), -1)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.norm(x))


def wav2letter() -> nn.Module:
    """Wav2Letter: Conv1d over 80 mel channels, kernels 48, 7 and 32, up to 2,000 channels."""
    layers: list[nn.Module] = [nn.Conv1d(80, 250, 48, 2, 23), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Conv1d(250, 250, 7, 1, 3), nn.ReLU()]
    layers += [nn.Conv1d(250, 2000, 32, 1, 16), nn.ReLU(), nn.Conv1d(2000, 2000, 1), nn.ReLU(), nn.Conv1d(2000, 40, 1)]
    return nn.Sequential(*layers)


class LargeKernel(nn.Module):
    """RepLKNet-style stage: a 4x4 patch stem, then four blocks of 1x1, 31x31 depthwise, 1x1 at 56 x 56."""

    def __init__(self, channels: int = 128, kernel: int = 31, depth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 4, 4), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 1),
            )
            for _ in range(depth)
        )
        self.fc = nn.Linear(channels, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.fc(x.mean((2, 3)))


class PointNet(nn.Module):
    """PointNet classifier: shared per-point MLP (Conv1d 1x1 to 1,024 channels), max over 1,024 points, MLP head."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3, 64, 128, 1024)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv1d(cin, cout, 1), nn.BatchNorm1d(cout), nn.ReLU()]
        self.points = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 40))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.points(x).amax(2))


class Attention(nn.Module):
    """Four pre-LN attention layers over 196 tokens of width 256; ``einsum`` writes the two products with Einsum."""

    def __init__(self, einsum: bool, dim: int = 256, heads: int = 4, depth: int = 4) -> None:
        super().__init__()
        self.einsum, self.heads = einsum, heads
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * dim) for _ in range(depth))
        self.out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.norm = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        for qkv, out, norm in zip(self.qkv, self.out, self.norm, strict=True):
            q, k, v = qkv(norm(x)).reshape(b, n, 3, self.heads, d // self.heads).unbind(2)
            if self.einsum:
                y = torch.einsum("bhnm,bmhd->bnhd", torch.einsum("bnhd,bmhd->bhnm", q, k).softmax(-1), v)
            else:
                y = ((q.transpose(1, 2) @ k.permute(0, 2, 3, 1)).softmax(-1) @ v.transpose(1, 2)).transpose(1, 2)
            x = x + out(y.reshape(b, n, d))
        return x


def super_resolution() -> nn.Module:
    """ESPCN x3 on a 224 x 224 input: three convolutions, then DepthToSpace (PixelShuffle)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 5, 1, 2), nn.Tanh(), nn.Conv2d(64, 32, 3, 1, 1), nn.Tanh(), nn.Conv2d(32, 27, 3, 1, 1),
        nn.PixelShuffle(3),
    )  # fmt: skip


def style_transfer() -> nn.Module:
    """Johnson et al.'s fast style transfer: reflection-padded convolutions with instance norm, 5 residual blocks,
    ConvTranspose upsampling, at 256 x 256."""

    def conv(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> list[nn.Module]:
        layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride), nn.InstanceNorm2d(cout, affine=True)]
        return [*layers, nn.ReLU()] if relu else layers

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv(128, 128, 3), *conv(128, 128, 3, relu=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    up = [
        nn.ConvTranspose2d(128, 64, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(64, affine=True), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(32, affine=True), nn.ReLU(),
    ]  # fmt: skip
    return nn.Sequential(
        *conv(3, 32, 9), *conv(32, 64, 3, 2), *conv(64, 128, 3, 2), *[Residual() for _ in range(5)], *up,
        nn.ReflectionPad2d(4), nn.Conv2d(32, 3, 9),
    )  # fmt: skip


def _zoo(name: str, resolution: int = 224, batch: int = 1) -> Callable[[], bytes]:
    def export() -> bytes:
        family, spec = next((f, s) for f, n, s in canonical_networks() if n == name)
        return export_onnx_bytes(build_network(family, spec), resolution, batch)

    return export


def _torch(make: Callable[[], nn.Module], example: torch.Tensor) -> Callable[[], bytes]:
    def export() -> bytes:
        torch.manual_seed(0)
        return export_with_input(make().eval(), example)

    return export


TOKENS, IMAGE_256 = torch.zeros(1, 256, dtype=torch.long), torch.randn(1, 3, 256, 256)
# name -> (what makes it unlike the training networks, exporter)
UNUSUAL: dict[str, tuple[str, Callable[[], bytes]]] = {
    "resnet18_batch8": ("batch 8 (training: batch 1)", _zoo("resnet18", batch=8)),
    "mobilenet_v2_batch8": ("batch 8", _zoo("mobilenet_v2", batch=8)),
    "resnet50_384": ("384 x 384 input (training: 96-256)", _zoo("resnet50", 384)),
    "mobilenet_v2_512": ("512 x 512 input", _zoo("mobilenet_v2", 512)),
    "convnext_tiny_288": ("288 x 288 input", _zoo("convnext_tiny", 288)),
    "video_r3d": ("Conv3d over 8 frames of 112 x 112", _torch(VideoNet, torch.randn(1, 3, 8, 112, 112))),
    "gpt_decoder": ("causal self-attention (Trilu mask), 256 tokens, 8,000-word head", _torch(Decoder, TOKENS)),
    "llama_decoder": ("RMSNorm, rotary embeddings, SiLU-gated MLP, causal attention; 256 tokens", _torch(Llama, TOKENS)),
    "wav2letter": ("Conv1d with kernels 48 and 32, 2,000 channels", _torch(wav2letter, torch.randn(1, 80, 800))),
    "large_kernel_31": ("31 x 31 depthwise convolutions", _torch(LargeKernel, torch.randn(1, 3, 224, 224))),
    "pointnet": ("per-point Conv1d, ReduceMax over 1,024 points", _torch(PointNet, torch.randn(1, 3, 1024))),
    "attention_einsum": ("attention products written with Einsum", _torch(lambda: Attention(True), torch.randn(1, 196, 256))),
    "attention_matmul": ("the same, written with @", _torch(lambda: Attention(False), torch.randn(1, 196, 256))),
    "super_resolution": ("ESPCN: DepthToSpace, Tanh, 224 -> 672", _torch(super_resolution, torch.randn(1, 3, 224, 224))),
    "style_transfer": ("InstanceNormalization, reflection Pad, ConvTranspose, 256 x 256", _torch(style_transfer, IMAGE_256)),
}  # fmt: skip


def measure_all(networks: dict[str, bytes], passes: int, seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name in networks}
    for index in range(passes):
        order = list(networks)
        rng.shuffle(order)
        for position, name in enumerate(order):
            out[name].append(measure_pass(networks[name]).min_ms)
            print(f"\rpass {index + 1}/{passes}: {position + 1}/{len(order)}", end="", flush=True)
        print(flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_unusual"))
    parser.add_argument("--passes", type=int, default=5, help="passes over all networks, each in its own shuffled order")
    parser.add_argument("--seed", type=int, default=0, help="draws the pass orders")
    parser.add_argument("--predictor", default="cpu-ort-1t-v1", help="shipped whole-network predictor")
    args = parser.parse_args(argv)

    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    predictor = choose_network_predictor(registry, args.predictor, None)
    canonical = {name: export_onnx_bytes(build_network(fam, spec), 224) for fam, name, spec in canonical_networks()}
    unusual = {name: export() for name, (_, export) in UNUSUAL.items()}
    measured = measure_all({**canonical, **unusual}, args.passes, args.seed)

    def row(name: str, data: bytes, what: str) -> dict:
        body = predict_onnx_bytes(predictor, data, ParseOptions())
        return {
            "network": name,
            "what": what,
            "gmacs": body["cost"]["macs"] / 1e9,
            "nodes": body["cost"]["nodes"],
            "passes_ms": measured[name],
            "measured_ms": min(measured[name]),
            "predicted_ms": body["latency_ms"]["value"],
            "std_ms": body["latency_ms"]["std"],
            "warnings": body["warnings"],
        }

    reference = [row(name, data, "canonical classifier") for name, data in canonical.items()]
    factor = statistics.median(r["measured_ms"] / r["predicted_ms"] for r in reference)
    rows = [row(name, unusual[name], what) for name, (what, _) in UNUSUAL.items()]
    for r in reference + rows:
        r["error_pct"] = 100 * (factor * r["predicted_ms"] / r["measured_ms"] - 1)
    spread = [abs(r["error_pct"]) for r in reference]
    report = {
        "command": "python -m benchmarks.onnx_unusual " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{describe_machine()}; {cpu_signature()}",
        "predictor": f"{predictor.name} {predictor.card.version}",
        "device": predictor.device,
        "factor": factor,
        "reference_abs_error_pct": {"median": float(np.median(spread)), "max": float(np.max(spread))},
        "reference": reference,
        "networks": rows,
    }
    write_report(args.out, report, markdown(report))


def markdown(report: dict) -> str:
    spread = report["reference_abs_error_pct"]
    passes = len(report["networks"][0]["passes_ms"])
    lines = [
        f"# Networks unlike any training network, predicted by {report['predictor']} ({report['device']})",
        "",
        f"Machine (measured and predicted): {report['machine']}. Command: `{report['command']}`. Measured: minimum of "
        f"{passes} passes over all networks, each pass in its own shuffled order.",
        "",
        f"This CPU against the predictor's device: the 19 canonical classifiers measured in the same passes ran "
        f"**{report['factor']:.2f}x** their predictions (median). Every prediction below is scaled by that factor; "
        f"the canonical networks then land within a median {spread['median']:.1f} % (max {spread['max']:.1f} %), "
        "the yardstick for the errors below.",
        "",
        "| network | what is unusual | GMACs | nodes | measured ms | predicted ms x factor (std) | error % | warnings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["networks"]:
        f = report["factor"]
        lines.append(
            f"| {r['network']} | {r['what']} | {r['gmacs']:.2f} | {r['nodes']} | {r['measured_ms']:.2f} | "
            f"{f * r['predicted_ms']:.2f} ({f * r['std_ms']:.2f}) | {r['error_pct']:+.1f} | {len(r['warnings'])} |"
        )
    spreads = [max(r["passes_ms"]) / min(r["passes_ms"]) for r in report["networks"] + report["reference"]]
    lines += [
        "",
        f"Slowest over fastest pass of a network: median {statistics.median(spreads):.2f}x, max {max(spreads):.2f}x "
        "(the minimum is kept).",
    ]
    lines += ["", "Warnings in each answer:", ""]
    lines += [f"- {r['network']}: " + ("; ".join(r["warnings"]) or "none") for r in report["networks"]]
    lines += ["", "The canonical classifiers (the yardstick):", "", "| network | measured ms | predicted ms x factor | error % |"]
    lines += ["|---|---|---|---|"]
    for r in report["reference"]:
        lines.append(
            f"| {r['network']} | {r['measured_ms']:.2f} | {report['factor'] * r['predicted_ms']:.2f} | {r['error_pct']:+.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
