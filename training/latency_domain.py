"""Write a shipped network predictor's training ``domain`` (op types, MACs and node range, convolutions) into its card.

    python -m training.latency_domain model/predictors/cpu-ort-1t-v1.card.json
    python -m training.latency_domain model/predictors/cpu-ort-1t-epyc-v1.card.json --aligned-to training/datasets/cpu-ort-1t

``training.latency_ship`` writes the domain of new predictors itself; this fills it in for cards made before it
did, from the same training split (the card's dataset; ``--aligned-to`` for a split placed by id in another
dataset's). Only the card changes, not the ONNX.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.card import ModelCard
from model.network_domain import training_domain
from training.latency_data import shipping_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("--aligned-to", type=Path, default=None, help="dataset whose in-domain split placed the networks")
    args = parser.parse_args(argv)
    card = ModelCard.load(args.card)
    if card.kind != "network":
        raise SystemExit(f"{args.card} is not a network predictor's card")
    data, split = shipping_split(Path(card.training["dataset"]), args.aligned_to)
    if len(split.train) != card.training.get("train"):
        raise SystemExit(f"the split has {len(split.train)} training networks, the card says {card.training.get('train')}")
    raw = json.loads(args.card.read_text())
    raw["domain"] = training_domain(data.graphs[i] for i in split.train)
    args.card.write_text(json.dumps(raw, indent=2) + "\n")
    print(json.dumps(raw["domain"]))


if __name__ == "__main__":
    main()
