"""A shipped cell predictor cut to some of its targets: the same network, its ONNX output gathered to those columns.

Used where one network answers some targets better than the predictor a request would otherwise reach (e.g.
``nb201-help-v1``: the network of ``nb201-v1`` 1.2.0, trained on 3 accuracies + 7 HELP latencies, serving the 7
latencies while ``nb201-v1`` 1.3.0 serves accuracy). The card keeps the source card's split, metrics and training
record, and says where the network came from.

    python -m training.target_subset SRC.card.json --name nb201-help-v1 --version 1.0.0 --priority -5 --unit ms \
        --origin "..." [--onnx-from REV]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def cut_model(model: onnx.ModelProto, columns: Sequence[int]) -> onnx.ModelProto:
    """``model`` with its ``prediction`` output (batch x targets) reduced to ``columns``, in that order."""
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    graph = cut.graph
    (output,) = graph.output
    if output.name != "prediction":
        raise ValueError(f"expected one output named 'prediction', found {output.name!r}")
    for node in graph.node:
        node.output[:] = ["prediction_all" if name == "prediction" else name for name in node.output]
    graph.initializer.append(numpy_helper.from_array(np.asarray(columns, np.int64), "kept_columns"))
    graph.node.append(helper.make_node("Gather", ["prediction_all", "kept_columns"], ["prediction"], axis=1))
    output.type.tensor_type.shape.dim[1].ClearField("dim_param")
    output.type.tensor_type.shape.dim[1].dim_value = len(columns)
    onnx.checker.check_model(cut)
    return cut


def cut_predictor(
    card: dict, model: onnx.ModelProto, keep: Sequence[str], *, name: str, version: str, priority: int, origin: str
) -> tuple[dict, onnx.ModelProto]:
    """The card and ONNX model of a predictor answering ``keep`` (target names of ``card``) with ``model``'s network."""
    names = [t["name"] for t in card["targets"]]
    unknown = [t for t in keep if t not in names]
    if unknown or not keep:
        raise ValueError(f"targets {unknown or 'none'} are not among the card's: {', '.join(names)}")
    columns = [names.index(t) for t in keep]
    new_card = {
        **card,
        "name": name,
        "version": version,
        "priority": priority,
        "onnx_file": f"{name}.onnx",
        "targets": [card["targets"][c] for c in columns],
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "training": {**card.get("training", {}), "origin": origin},
    }
    return new_card, cut_model(model, columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path, help="the source card (its ONNX file beside it, or from --onnx-from)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--priority", type=int, default=0)
    parser.add_argument("--unit", help="keep every target of this unit")
    parser.add_argument("--targets", nargs="+", help="keep these targets (in this order)")
    parser.add_argument("--origin", required=True, help="where the network comes from and why it is shipped")
    parser.add_argument("--onnx-from", help="git revision to read the card and ONNX file from (a replaced version)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: the card's)")
    args = parser.parse_args(argv)

    def read(path: Path) -> bytes:
        if args.onnx_from is None:
            return path.read_bytes()
        return subprocess.run(["git", "show", f"{args.onnx_from}:{path}"], capture_output=True, check=True).stdout

    card = json.loads(read(args.card))
    model = onnx.load_from_string(read(args.card.parent / card["onnx_file"]))
    keep = args.targets or [t["name"] for t in card["targets"] if t["unit"] == args.unit]
    new_card, cut = cut_predictor(
        card, model, keep, name=args.name, version=args.version, priority=args.priority, origin=args.origin
    )
    out = args.out or args.card.parent
    onnx.save(cut, str(out / new_card["onnx_file"]))
    (out / f"{args.name}.card.json").write_text(json.dumps(new_card, indent=2) + "\n")
    print(f"wrote {out / new_card['onnx_file']} and {out / f'{args.name}.card.json'}: {', '.join(keep)}")


if __name__ == "__main__":
    main()
