"""Model cards: the JSON file beside each shipped predictor ONNX, and the registry that finds them.

A card names the predictor, its version, the search spaces and ops it accepts, and each target with its unit,
normalisation and measured test metrics, plus the split, data checksums and git commit it was trained from.
A cell predictor's ONNX graph takes ``tokens`` (B, L, 192) float32, ``mask`` (B, L) bool and ``depth`` (B, 64)
float32 and returns ``prediction`` (B, T) float32 in target units (the de-normalisation is inside the graph).
A network predictor (``kind="network"``) takes ``tokens`` (B, L, NETWORK_TOKEN_DIM), ``mask`` (B, L) and ``features``
(B, GRAPH_FEATURE_DIM) from ``model.network_tokenizer`` and returns ``prediction`` (B, 2): latency in ms and its std.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PREDICTOR_DIR = Path(__file__).parent / "predictors"


@dataclass(frozen=True)
class TargetCard:
    name: str
    unit: str
    description: str
    transform: str  # what the network regresses before normalisation: "identity", "log" or "log_error"
    mean: float  # normalisation of the regressed quantity
    std: float
    metrics: dict[str, float] = field(default_factory=dict)
    floor: float | None = None  # the ONNX graph never predicts below it (chance accuracy, %); None: no floor


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    spaces: list[str]
    ops: list[str]
    targets: list[TargetCard]
    onnx_file: str
    split: dict[str, Any] = field(default_factory=dict)
    data_checksums: dict[str, str] = field(default_factory=dict)
    git_commit: str = ""
    created: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = "cell"  # "cell": tokens/mask/depth -> prediction (B, T); "network": whole-network ONNX predictor
    device: dict[str, Any] = field(default_factory=dict)  # network predictors: the measured device (CPU, runtime)
    priority: int = 0  # default choice when a request names no predictor: highest priority first, then by name
    calibration: dict[str, Any] = field(default_factory=dict)  # few-shot calibrated predictors: base, sources, fit
    tokenizer: str = ""  # network predictors: the network tokenizer version they were trained on ("" before 3)
    domain: dict[str, Any] = field(default_factory=dict)  # network predictors: op types, MACs, nodes of training nets

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        fields = dict(data)
        fields["targets"] = [TargetCard(**t) for t in data["targets"]]
        return cls(**fields)

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        return cls.from_dict(json.loads(Path(path).read_text()))


def find_cards(directory: Path = PREDICTOR_DIR) -> list[tuple[ModelCard, Path]]:
    """Every (card, onnx path) pair in a directory, sorted by predictor name."""
    found = []
    for card_path in sorted(Path(directory).glob("*.card.json")):
        card = ModelCard.load(card_path)
        found.append((card, card_path.parent / card.onnx_file))
    return found
