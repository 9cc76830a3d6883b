"""Networks written apart from the dataset's families: how far the shipped whole-network predictor lands, and whether its
std says so.

    python -m benchmarks.onnx_out_of_scope --out benchmarks/results/onnx_out_of_scope
    python -m benchmarks.onnx_out_of_scope --networks yolo --out benchmarks/results/onnx_yolo   # published YOLOv8 scales
    python -m benchmarks.onnx_out_of_scope --networks sequence --out benchmarks/results/onnx_sequence
    python -m benchmarks.onnx_out_of_scope --networks decoder --out benchmarks/results/onnx_decoder

The dataset's first 14 families are image classifiers. Users also send segmentation, detection, MLP and sequence
models. Five such networks, written here in torch (not from the zoo's samplers) and exported like the dataset's
(opset 17, batch 1, float32, BN folded). Since the dense-prediction extension (``unet``, ``fpn``, ``deeplab``
families) the UNet and the FPN below are of kinds the dataset holds, though written independently of it; the other
three remain outside it:

- ``unet``: encoder-decoder, ConvTranspose upsampling, skip Concats, 224 x 224 input, per-pixel head;
- ``fpn``: strided conv backbone with a feature pyramid (nearest Resize upsampling + Add), 224 x 224;
- ``mixer``: MLP-Mixer S/16 (token-mixing MLPs over transposed tokens, no attention, no convs after the stem);
- ``text_encoder``: 4 pre-LN attention blocks over 128 tokens of width 256 (a BERT-mini body, float embeddings in);
- ``lstm``: 2-layer LSTM (ONNX ``LSTM`` op). Until the sequence extension (``rnn``, ``text`` families, 1.7.0) no
  dataset network had it and it was tokenized as "other"; it has its own code now.

The ``sequence`` set: the ``text`` family's BERT-mini / -small / DistilBERT shapes at 128 tokens, a DeepSpeech2-shaped
GRU network with a Conv2d front end (the ``rnn`` family has Conv1d only), Zaremba's medium PTB LSTM language model
(a 10,000-word softmax layer on each of 35 steps), and the LSTM above.

Each is measured in 3 passes over the set (shuffled orders, minimum kept) on the dataset's device only, and
predicted by the shipped predictor of that device. With ``--reference N``, N networks of the dataset's reference part
(labels as measured) are measured in the same passes, interleaved: the median of their ``now / label`` is the
machine's speed in this sitting against the labels the predictor learned (a shared host moves by 5-10 % over hours),
and the report also scores the predictor against each measurement brought to the labels' speed.

The std is judged against the 19 in-family real-world networks
of ``benchmarks/onnx_realworld.py``, predicted in the same run: a predictor that knows it is outside its data gives
these networks a wider relative std.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.machine import describe_machine
from benchmarks.onnx_realworld import (
    canonical_networks,
    label_speed_summary,
    measure_with_references,
    speed_section,
    summary_table,
)
from model.card import PREDICTOR_DIR
from model.onnx_graph import ParseOptions, parse_onnx
from service.network_predictor import predict_onnx_bytes
from service.predictor import load_registry
from service.routers.predict_onnx import choose_network_predictor
from training.latency_baselines import fit_flops_loglog, fit_kernel_sum, kind_sums
from training.latency_data import load_latency_dataset
from training.latency_metrics import latency_metrics
from training.netgen.blocks import Mlp, MultiHeadAttention
from training.netgen.export import build_network, export_onnx_bytes, export_spec, export_with_input
from training.netgen.files import META
from training.netgen.measure import device_mismatch


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = 21) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(nn.Sequential(conv_bn(cin, w), conv_bn(w, w)))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = nn.Sequential(conv_bn(cin, 2 * cin), conv_bn(2 * cin, 2 * cin))
        self.up, self.merge = nn.ModuleList(), nn.ModuleList()
        cin = 2 * cin
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, 2))
            self.merge.append(nn.Sequential(conv_bn(2 * w, w), conv_bn(w, w)))
            cin = w
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], 1))
        return self.head(x)


class FPN(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256, 512), pyramid: int = 128) -> None:
        super().__init__()
        stages, cin = [], 3
        for w in widths:
            stages.append(nn.Sequential(conv_bn(cin, w, 2), conv_bn(w, w)))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([nn.Conv2d(w, pyramid, 1) for w in widths[2:]])
        self.smooth = nn.ModuleList([nn.Conv2d(pyramid, pyramid, 3, 1, 1) for _ in widths[2:]])
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):  # noqa: ANN001, ANN201
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 2:
                features.append(x)
        top = self.lateral[-1](features[-1])
        outputs = [self.smooth[-1](top)]
        for lateral, smooth, feature in zip(self.lateral[-2::-1], self.smooth[-2::-1], features[-2::-1], strict=True):
            top = lateral(feature) + self.upsample(top)
            outputs.append(smooth(top))
        return tuple(outputs)


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.ln1, self.token_mlp = nn.LayerNorm(dim), Mlp(tokens, 0.5)
        self.ln2, self.channel_mlp = nn.LayerNorm(dim), Mlp(dim, 4.0)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = x + self.token_mlp(self.ln1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.ln2(x))


class Mixer(nn.Module):
    def __init__(self, dim: int = 512, depth: int = 8, patch: int = 16, resolution: int = 224) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock((resolution // patch) ** 2, dim) for _ in range(depth)])
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, 1000)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.ln(x).mean(1))


class TextEncoder(nn.Module):
    def __init__(self, dim: int = 256, depth: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [nn.ModuleList([nn.LayerNorm(dim), MultiHeadAttention(dim, heads), nn.LayerNorm(dim), Mlp(dim, 4.0)])
             for _ in range(depth)]
        )  # fmt: skip
        self.ln = nn.LayerNorm(dim)

    def forward(self, x):  # noqa: ANN001, ANN201
        for ln1, attn, ln2, mlp in self.blocks:
            x = x + attn(ln1(x))
            x = x + mlp(ln2(x))
        return self.ln(x)


class Recurrent(nn.Module):
    def __init__(self, features: int = 128, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):  # noqa: ANN001, ANN201
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class SpeechGRU(nn.Module):
    """DeepSpeech2-shaped: two strided Conv2d layers over a spectrogram (161 bins), 3 bidirectional GRUs, a per-frame
    character classifier (29)."""

    def __init__(self, bins: int = 161, hidden: int = 384, layers: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, (41, 11), (2, 2), (20, 5)), nn.BatchNorm2d(32), nn.Hardtanh(0, 20),
            nn.Conv2d(32, 32, (21, 11), (2, 1), (10, 5)), nn.BatchNorm2d(32), nn.Hardtanh(0, 20),
        )  # fmt: skip
        self.gru = nn.GRU(32 * ((bins + 3) // 4), hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 29)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.conv(x)  # (1, 32, bins / 4, frames / 2)
        x = x.flatten(1, 2).transpose(1, 2)
        out, _ = self.gru(x)
        return self.head(out)


class LstmLanguageModel(nn.Module):
    """Zaremba et al.'s medium PTB language model: embedding 650, 2 LSTM layers of 650, softmax layer over 10,000
    words, 35 steps."""

    def __init__(self, vocab: int = 10000, width: int = 650) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=2, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids):  # noqa: ANN001, ANN201
        out, _ = self.lstm(self.embed(ids))
        return self.head(out)


def sequence_networks() -> dict[str, tuple[str, bytes]]:
    """Sequence models: the ``text`` family's BERT-shaped encoders (published widths and depths, 128 tokens), and
    recurrent networks written here apart from the ``rnn`` family (a Conv2d front end it never has; a
    vocabulary-sized softmax layer on every step)."""
    torch.manual_seed(0)
    module = __import__("training.netgen.zoo.text", fromlist=["canonical"])
    networks = {
        spec["name"]: (f"{spec['depth']} x {spec['dim']} encoder, 128 tokens (text family shape)", export_spec("text", spec))
        for spec in module.canonical()
    }  # fmt: skip
    networks["speech_gru"] = (
        "DeepSpeech2-shaped: Conv2d front end, 3 bidirectional GRUs, 200 frames",
        export_with_input(SpeechGRU().eval(), torch.randn(1, 1, 161, 200)),
    )
    networks["lstm_lm"] = (
        "PTB medium LSTM language model, 35 steps",
        export_with_input(LstmLanguageModel().eval(), torch.zeros(1, 35, dtype=torch.long)),
    )
    networks["lstm"] = (
        "2-layer LSTM, 64 steps (the out-of-scope set's)",
        export_with_input(Recurrent().eval(), torch.randn(1, 64, 128)),
    )
    return networks


def out_of_scope_networks() -> dict[str, tuple[str, bytes]]:
    """name -> (what lies outside the dataset, ONNX bytes)."""
    torch.manual_seed(0)
    return {
        "unet": ("ConvTranspose upsampling, skip Concats, full-resolution head", export_onnx_bytes(UNet().eval(), 224)),
        "fpn": ("feature pyramid: Resize upsampling + Add, several outputs", export_onnx_bytes(FPN().eval(), 224)),
        "mixer": ("token-mixing MLPs, no attention", export_onnx_bytes(Mixer().eval(), 224)),
        "text_encoder": (
            "attention over 128 tokens, no image stem",
            export_with_input(TextEncoder().eval(), torch.randn(1, 128, 256)),
        ),
        "lstm": ("2-layer LSTM, 64 steps", export_with_input(Recurrent().eval(), torch.randn(1, 64, 128))),
    }


def yolo_networks() -> dict[str, tuple[str, bytes]]:
    """The published YOLOv8 scales (``yolo`` family's canonical members): in family, at their own resolutions."""
    module = __import__("training.netgen.zoo.yolo", fromlist=["canonical"])
    return {
        spec["name"]: (f"published YOLOv8 scale, {spec['resolution']} x {spec['resolution']}",
                       export_onnx_bytes(build_network("yolo", spec), spec["resolution"]))
        for spec in module.canonical()
    }  # fmt: skip


def decoder_networks() -> dict[str, tuple[str, bytes]]:
    """Published decoder shapes (``decoder`` family's canonical members) taking one generation step with a KV cache."""
    module = __import__("training.netgen.zoo.decoder", fromlist=["canonical"])
    return {
        spec["name"]: (f"{spec['layers']} x {spec['dim']} {spec['style']} decoder, one step after {spec['past']} tokens",
                       export_spec("decoder", spec))
        for spec in module.canonical()
    }  # fmt: skip


NETWORK_SETS = {
    "out_of_scope": out_of_scope_networks,
    "yolo": yolo_networks,
    "sequence": sequence_networks,
    "decoder": decoder_networks,
}
TITLES = {
    "out_of_scope": "Networks outside the dataset's families",
    "yolo": "Published YOLOv8 scales",
    "sequence": "Sequence models (text encoders, recurrent networks)",
    "decoder": "Published decoder shapes, one generation step",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--networks",
        choices=sorted(NETWORK_SETS),
        default="out_of_scope",
        help="which set: the five networks "
        "written apart from the zoo, the published YOLOv8 scales, the sequence models, or the published decoder shapes",
    )
    parser.add_argument("--data", type=Path, default=Path("training/datasets/cpu-ort-1t"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx_out_of_scope"))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--measured-from", type=Path, default=None, help="reuse the measured passes of this earlier report (JSON)"
    )
    parser.add_argument(
        "--reference", type=int, default=0, metavar="N",
        help="also measure N dataset networks in the same passes: the sitting's speed against the labels",
    )  # fmt: skip
    args = parser.parse_args(argv)

    meta = json.loads((args.data / META).read_text())
    networks = NETWORK_SETS[args.networks]()
    measured_on = describe_machine()
    speed = None
    if args.measured_from is not None:
        earlier = json.loads(args.measured_from.read_text())
        passes = {r["network"]: r["passes_ms"] for r in earlier["networks"]}
        measured_on = earlier.get("measured_on", earlier["machine"])
        speed = earlier.get("sitting_speed")
    else:
        mismatch = device_mismatch(meta)
        if mismatch:
            raise SystemExit(f"cannot measure here: {mismatch}")
        to_measure = {name: onnx_bytes for name, (_, onnx_bytes) in networks.items()}
        passes, speed = measure_with_references(to_measure, args.data, args.reference, args.passes, seed=0)

    registry = load_registry(PREDICTOR_DIR, "cpu", 1)
    predictor = choose_network_predictor(registry, None, meta["device"])
    data = load_latency_dataset(args.data)
    flops_fit = fit_flops_loglog(np.array([g.totals()["flops"] for g in data.graphs]), data.latency_ms)
    kernel_fit = fit_kernel_sum(np.stack([kind_sums(g) for g in data.graphs]), data.latency_ms)

    rows = []
    for name, (outside, onnx_bytes) in networks.items():
        body = predict_onnx_bytes(predictor, onnx_bytes, ParseOptions())
        graph = parse_onnx(onnx_bytes)
        measured, value, std = min(passes[name]), body["latency_ms"]["value"], body["latency_ms"]["std"]
        at_label_speed = measured / speed["now_over_label"] if speed else None  # the labels' machine speed
        rows.append(
            {
                "network": name,
                "outside": outside,
                "gmacs": graph.totals()["macs"] / 1e9,
                "nodes": graph.n,
                "measured_ms": measured,
                "passes_ms": passes[name],
                **({"at_label_speed_ms": at_label_speed} if at_label_speed else {}),
                "archcast_ms": value,
                "archcast_std_ms": std,
                "relative_std": std / value,
                "z": abs(np.log(measured / value)) / max(std / value, 1e-9),
                "kernel_sum_ms": float(kernel_fit(kind_sums(graph)[None])[0]),
                "flops_loglog_ms": float(flops_fit(np.array([graph.totals()["flops"]]))[0]),
                "warnings": body["warnings"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    in_family = []
    for family, _, spec in canonical_networks():
        body = predict_onnx_bytes(predictor, export_onnx_bytes(build_network(family, spec), 224), ParseOptions())
        in_family.append(body["latency_ms"]["std"] / body["latency_ms"]["value"])
    true = np.array([r["measured_ms"] for r in rows])
    report = {
        "command": "python -m benchmarks.onnx_out_of_scope " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe_machine(),
        "measured_on": measured_on,
        "predictor": f"{predictor.name} {predictor.card.version}",
        "set": args.networks,
        "device": meta["device"],
        "networks": rows,
        "summary": {
            m: latency_metrics(np.array([r[f"{m}_ms"] for r in rows]), true) for m in ("archcast", "kernel_sum", "flops_loglog")
        },
        "in_family_relative_std": {"median": float(np.median(in_family)), "max": float(np.max(in_family))},
    }
    if speed:
        report |= {"sitting_speed": speed, "summary_at_label_speed": label_speed_summary(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    rel = report["in_family_relative_std"]
    lines = [
        f"# {TITLES[report.get('set', 'out_of_scope')]}, on {report['device']}",
        "",
        f"Measured on: {report.get('measured_on', report['machine'])}. Predicted on: {report['machine']}. Predictor: "
        f"{report['predictor']}. Command: `{report['command']}`. Measured: minimum of "
        f"{len(report['networks'][0]['passes_ms'])} passes over the set, each in its own shuffled order.",
        "",
        "| network | what it is | GMACs | nodes | measured ms | ArchCast ms (std) | error % | error / std | "
        "kernel-sum ms | FLOPs fit ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["networks"]:
        error = 100 * (r["archcast_ms"] / r["measured_ms"] - 1)
        lines.append(
            f"| {r['network']} | {r['outside']} | {r['gmacs']:.2f} | {r['nodes']} | {r['measured_ms']:.2f} | "
            f"{r['archcast_ms']:.2f} ({r['archcast_std_ms']:.2f}) | {error:+.1f} | {r['z']:.1f} | "
            f"{r['kernel_sum_ms']:.2f} | {r['flops_loglog_ms']:.2f} |"
        )
    lines += ["", "Warnings in the answer (the predictor card's training domain):", ""]
    lines += [f"- {r['network']}: " + ("; ".join(r.get("warnings", [])) or "none") for r in report["networks"]]
    lines += summary_table(report["summary"], "MAPE %")
    lines += speed_section(report)
    lines += [
        "",
        "Relative std (std / value) of these networks: "
        + ", ".join(f"{r['network']} {100 * r['relative_std']:.1f} %" for r in report["networks"])
        + f"; of the 19 in-family real-world networks: median {100 * rel['median']:.1f} %, max {100 * rel['max']:.1f} %.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
