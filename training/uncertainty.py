"""Per-target predictive std of a shipped cell predictor, fitted on its validation cells and checked on its test cells.

The std is homoscedastic in the space the network regresses (log latency, log(100 - accuracy)): the RMS residual on
the split's validation cells, the cells that already chose the checkpoint. The card gets, per target,
``std_log`` (that RMS) and the share of test cells whose true value lies within the predicted +-1 / +-2 sigma
(``within_1sigma`` / ``within_2sigma``, %; a Gaussian would give 68.3 / 95.4). The service turns ``std_log`` into a
std in target units for every prediction.

    python -m training.uncertainty model/predictors/nb201-latency-v1.card.json [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model.card import ModelCard
from training.data import load_dataset
from training.splits import SPLIT_DIR, load_split
from training.trainer import TRANSFORMS, forward_transform


def predict_cells(onnx_path: Path, data, rows: np.ndarray) -> np.ndarray:
    from model.tokenizer import EncodedGraphs, tokenize

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = []
    for start in range(0, len(rows), 2048):
        part = rows[start : start + 2048]
        batch = tokenize(EncodedGraphs(data.encoded.op_ids[part], data.encoded.adjacency[part]))
        out.append(session.run(["prediction"], {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth})[0])
    return np.concatenate(out).astype(np.float64)


def fit_uncertainty(card_path: Path) -> dict[str, dict[str, float]]:
    """Add ``std_log``, ``within_1sigma``, ``within_2sigma`` to every target of the card; returns them."""
    card = ModelCard.load(card_path)
    data = load_dataset(card.target_names)
    _, val, test = load_split(SPLIT_DIR / card.split["file"], len(data.indices))
    onnx_path = card_path.parent / card.onnx_file
    kinds = np.array([TRANSFORMS.index(t.transform) for t in card.targets])
    found: dict[str, dict[str, float]] = {}
    residual: dict[str, np.ndarray] = {}
    for name, rows in (("val", val), ("test", test)):
        with np.errstate(invalid="ignore"):
            predicted = predict_cells(onnx_path, data, rows)
            residual[name] = forward_transform(data.y[rows], kinds) - forward_transform(predicted, kinds)
    raw = json.loads(card_path.read_text())
    for t, target in enumerate(raw["targets"]):
        val_r = residual["val"][:, t][np.isfinite(residual["val"][:, t])]
        test_r = residual["test"][:, t][np.isfinite(residual["test"][:, t])]
        sigma = float(np.sqrt(np.mean(val_r**2)))
        found[target["name"]] = {
            "std_log": round(sigma, 6),
            "within_1sigma": round(float(100 * np.mean(np.abs(test_r) <= sigma)), 2),
            "within_2sigma": round(float(100 * np.mean(np.abs(test_r) <= 2 * sigma)), 2),
        }
        target["metrics"].update(found[target["name"]])
    card_path.write_text(json.dumps(raw, indent=2) + "\n")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="+", type=Path)
    args = parser.parse_args()
    for card_path in args.cards:
        for name, values in fit_uncertainty(card_path).items():
            print(f"{card_path.stem} {name}: {values}")


if __name__ == "__main__":
    main()
