"""Resumable, incremental whole-network latency dataset: sample -> export -> parse -> measure twice -> append.

Network ``i`` is fully determined by (dataset seed, i): its family is ``FAMILIES[i % F]`` and its spec is
sampled from ``Random(f"{seed}:{i}")``, so the dataset commits specs and measurements, never weights. An extension
(``--add-families unet fpn deeplab --from-id 3150``, recorded in ``meta.json``) gives networks from that id on the
round-robin of its own family list, so the networks before it keep their families and specs.
Work goes in chunks: export a chunk, then measure it in one shuffled order (pass A) and again in another
(pass B). A chunk's records are appended (and fsynced) only when the chunk is complete; on restart, ids
already in ``measurements.jsonl`` are skipped, so a kill at any point loses at most one chunk and never
duplicates a record.

Files in the dataset directory: ``meta.json`` (device, CPU, versions, settings), ``measurements.jsonl`` (one
line per network: id, family, spec, pass A/B results, latency_ms = mean of the two pass minima, or an error)
and ``graphs.jsonl.gz`` (one gzip member per chunk: id + the parsed IR, for training without re-exporting).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model.onnx_graph import ParseOptions, parse_onnx
from training.netgen.export import export_spec
from training.netgen.files import GRAPHS, MEASUREMENTS, META, append_lines, done_ids, latest_records
from training.netgen.measure import DEVICE_NAME, MeasureSettings, device_mismatch, environment, measure_chunk
from training.netgen.registry import ALL_FAMILY_MODULES, FAMILY_MODULES, family
from training.netgen.remeasure import remeasure


@dataclass(frozen=True)
class NetworkSpec:
    id: int
    family: str
    spec: dict[str, Any]


MAX_MACS = 4.0e9  # samples above this are redrawn (deterministically): a 1-thread CPU measurement stays under ~0.3 s


GATES = {torch.nn.LSTM: 4, torch.nn.GRU: 3, torch.nn.RNN: 1}


def _recurrent_macs(layer: torch.nn.RNNBase, steps: int) -> float:
    """``steps`` = time steps x batch rows. Per step and direction, each layer multiplies its input and its hidden
    state by gates x hidden weights."""
    directions = 2 if layer.bidirectional else 1
    total = 0.0
    for index in range(layer.num_layers):
        width = layer.input_size if index == 0 else layer.hidden_size * directions
        total += GATES[type(layer)] * layer.hidden_size * (width + layer.hidden_size) * directions * steps
    return total


def count_macs(module: torch.nn.Module, example: int | torch.Tensor | tuple[torch.Tensor, ...]) -> float:
    """Conv (1-D / 2-D), ConvTranspose2d, Linear and LSTM / GRU multiply-accumulates of one forward pass on
    ``example`` (an int: a batch-1 image of that resolution; a tuple: the forward's inputs), attention matmuls
    excluded."""
    total = [0.0]
    layers = torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear | torch.nn.RNNBase

    def hook(layer: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(layer, torch.nn.ConvTranspose2d):  # every input element meets (C_out / groups) x k x k weights
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total[0] += inputs[0].numel() * layer.out_channels // layer.groups * kernel
        elif isinstance(layer, torch.nn.Conv1d | torch.nn.Conv2d):
            total[0] += out.numel() * layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        elif isinstance(layer, torch.nn.RNNBase):
            rows, steps = inputs[0].shape[:2] if layer.batch_first else inputs[0].shape[1::-1]
            total[0] += _recurrent_macs(layer, rows * steps)
        else:
            total[0] += out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, layers)]
    if isinstance(example, int):
        example = torch.zeros(1, 3, example, example)
    with torch.no_grad():
        module(*example) if isinstance(example, tuple) else module(example)
    for handle in handles:
        handle.remove()
    return total[0]


def family_of(index: int, families: tuple[str, ...], extensions: Sequence[dict[str, Any]] = ()) -> str:
    """The family of network ``index``: round-robin over ``families``, or over the last extension starting at or
    before ``index`` (``{"from_id": N, "families": [...]}``), counted from its ``from_id``."""
    start, names = 0, families
    for extension in extensions:
        if index >= int(extension["from_id"]):
            start, names = int(extension["from_id"]), tuple(extension["families"])
    return names[(index - start) % len(names)]


def network_spec(
    seed: int, index: int, families: tuple[str, ...] = FAMILY_MODULES, extensions: Sequence[dict[str, Any]] = ()
) -> NetworkSpec:
    """Network ``index`` of dataset ``seed``: family round-robin, spec redrawn until its MACs fit ``MAX_MACS``."""
    name = family_of(index, families, extensions)
    fam = family(name)
    attempt = 0
    while True:
        spec = fam.sample(random.Random(f"{seed}:{index}" if attempt == 0 else f"{seed}:{index}:{attempt}"))
        if count_macs(fam.build(spec).eval(), fam.example_input(spec)) <= MAX_MACS:
            return NetworkSpec(index, name, spec)
        attempt += 1


DEFAULT_MAX_DRIFT_PCT = 4.0
"""Largest median drift (re-measured minus label, %) at which new measurements still join a dataset."""


def check_drift(directory: Path, count: int, file: str, max_drift_pct: float) -> dict[str, float]:
    """Measure ``count`` networks of the dataset again; refuse (SystemExit) when their median drift is too large.
    Every check measures afresh: an earlier (refused) check's file is not resumed."""
    (directory / file).unlink(missing_ok=True)
    drift = remeasure(directory, count, file=file)
    print(f"drift check ({directory / file}): {json.dumps(drift)}")
    if abs(drift["median_signed_pct"]) > max_drift_pct:
        raise SystemExit(
            f"this machine runs {drift['median_signed_pct']:+.1f} % against the dataset's labels (median of "
            f"{drift['n']:.0f} networks measured again, limit {max_drift_pct} %): new measurements would not be "
            "comparable with the old ones. Extend on a quieter machine, or raise --max-drift"
        )
    return drift


def generate(
    directory: Path,
    count: int,
    seed: int = 0,
    chunk: int = 12,
    settings: MeasureSettings | None = None,
    families: tuple[str, ...] = FAMILY_MODULES,
    progress: bool = True,
    device: str = DEVICE_NAME,
    extension: dict[str, Any] | None = None,
    drift_check: int = 0,
    max_drift_pct: float = DEFAULT_MAX_DRIFT_PCT,
    redo: list[int] | None = None,
    anchors: int = 0,
    max_refusals: int = 5,
    retry_wait_s: float = 60.0,
) -> None:
    """Measure networks ``0 .. count-1`` of the dataset into ``directory``, skipping those already there;
    ``extension`` (``{"from_id": N, "families": [...]}``) is recorded in ``meta.json`` on first use. Before a new
    extension, ``drift_check`` measured networks are measured again (``drift_<from_id>.jsonl``); if their median
    signed difference from their labels exceeds ``max_drift_pct``, the machine does not run as it did when the
    dataset was made, and the extension is refused before anything is added. ``redo``: measure these measured
    networks again instead (records marked ``"redo": true`` are appended; a loader keeps each id's last record).
    ``anchors``: every chunk also measures this many earlier networks of its families (``anchor_drift``); a chunk whose
    anchors' median drift from their labels exceeds ``max_drift_pct`` is not kept and is measured again after
    ``retry_wait_s``; after ``max_refusals`` refusals in a row the run stops (resume it later)."""
    settings = settings or MeasureSettings()
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / META
    meta = {"seed": seed, "families": list(families), "measure": settings.to_dict(), **environment(), "device": device}
    extensions: list[dict[str, Any]] = []
    done = done_ids(directory)
    if meta_path.exists():
        previous = json.loads(meta_path.read_text())
        if "parts" in previous:
            raise SystemExit(f"{directory} combines other datasets (training.netgen.combine); extend one of its parts")
        extensions = list(previous.get("extensions", []))
        if previous.get("seed") != seed or previous.get("families") != list(families):
            raise SystemExit(f"{directory} holds a dataset with another seed or family list; use another directory")
        mismatch = device_mismatch(previous)
        if previous.get("device", device) != device:
            mismatch = f"it records device {previous['device']!r}, not {device!r}"
        if mismatch and done:
            raise SystemExit(f"{directory} cannot be extended here: {mismatch}; use another directory")
    if extension is not None and extension not in extensions:
        unknown = [name for name in extension["families"] if name not in ALL_FAMILY_MODULES]
        last_start = max([int(e["from_id"]) for e in extensions], default=0)
        if unknown:
            raise SystemExit(f"unknown families {unknown}; known: {', '.join(ALL_FAMILY_MODULES)}")
        if int(extension["from_id"]) <= max(done, default=-1) or int(extension["from_id"]) <= last_start:
            raise SystemExit(f"an extension must start after every measured network and earlier extension: {extension}")
        if drift_check and done:
            check_drift(directory, drift_check, f"drift_{extension['from_id']}.jsonl", max_drift_pct)
        extensions.append(extension)
    if extensions:
        meta["extensions"] = extensions
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    todo = [i for i in range(count) if i not in done]
    if redo is not None:
        if not set(redo) <= done:
            raise SystemExit(f"only measured networks can be measured again: {sorted(set(redo) - done)[:10]}")
        todo = sorted(set(redo))
    rng = random.Random(f"order:{seed}:{len(done)}" + ("" if redo is None else f":redo{len(todo)}"))
    total = count if redo is None else len(todo)
    bar = tqdm(total=total, initial=total - len(todo), desc="networks", unit="net", smoothing=0.05, disable=not progress)
    pending = set(todo)
    earlier = {i: r for i, r in latest_records(directory).items() if i not in pending}
    refusals = 0
    start = 0
    while start < len(todo):
        ids = todo[start : start + chunk]
        specs = {i: network_spec(seed, i, families, extensions) for i in ids}
        anchor_rng = random.Random(f"anchors:{ids[0]}:{refusals}")
        chosen = pick_anchors(earlier, [net.family for net in specs.values()], anchors, anchor_rng)
        models: dict[int, bytes] = {}
        records: dict[int, dict[str, Any]] = {}
        graph_lines = []
        for i, net in specs.items():
            record: dict[str, Any] = {"id": i, "family": net.family, "spec": net.spec, **({"redo": True} if redo else {})}
            try:
                data = export_spec(net.family, net.spec)
                graph = parse_onnx(data, ParseOptions(resolution=int(net.spec.get("resolution", 224))))
                models[i] = data
                record["onnx_bytes"] = len(data)
                record["totals"] = graph.totals()
                graph_lines.append(json.dumps({"id": i, "graph": graph.to_dict()}, separators=(",", ":")))
            except Exception as exc:  # export or parse failure: recorded so the run moves on
                record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            records[i] = record
        for a in chosen:  # anchors: negative keys, never stored as networks
            models[-1 - a] = export_spec(earlier[a]["family"], earlier[a]["spec"])
        measured = measure_chunk(models, settings, rng)
        if chosen:
            drift = anchor_drift({a: measured[-1 - a] for a in chosen}, earlier)
            if not abs(drift) <= max_drift_pct:  # NaN (no anchor measured) is refused too: the chunk is unchecked
                refusals += 1
                why = "could not be measured" if np.isnan(drift) else f"ran {drift:+.1f} % against their labels"
                print(f"chunk from id {ids[0]} not kept: its {len(chosen)} anchors {why} "
                      f"(limit {max_drift_pct} %), refusal {refusals} of {max_refusals}", flush=True)  # fmt: skip
                if refusals >= max_refusals:
                    raise SystemExit(
                        f"{refusals} chunks in a row were refused, the last because its anchors {why}; nothing of those "
                        "chunks was kept. Resume later on a quieter machine"
                    )
                time.sleep(retry_wait_s)
                continue
            refusals = 0
            for i in ids:
                records[i]["anchor_drift"] = {"pct": round(drift, 2), "ids": chosen}
        for i in ids:
            records[i].update(measured.get(i, {}))  # a network that failed to export has no measurement
        if redo is None:  # a network measured again keeps its graph (the export is deterministic)
            append_lines(directory / GRAPHS, graph_lines, compress=True)
        append_lines(directory / MEASUREMENTS, [json.dumps(records[i], separators=(",", ":")) for i in ids])
        bar.update(len(ids))
        start += chunk
    bar.close()


def pick_anchors(earlier: dict[int, dict[str, Any]], chunk_families: list[str], count: int, rng: random.Random) -> list[int]:
    """``count`` earlier networks, drawn round-robin over the chunk's families (any family where one has none)."""
    if count <= 0 or not earlier:
        return []
    by_family: dict[str, list[int]] = {}
    for i, record in earlier.items():
        by_family.setdefault(record["family"], []).append(i)
    names = sorted(set(chunk_families))
    chosen: list[int] = []
    for k in range(count):
        pool = by_family.get(names[k % len(names)]) or sorted(earlier)
        left = [i for i in pool if i not in chosen]
        if left:
            chosen.append(rng.choice(sorted(left)))
    return chosen


def anchor_drift(results: dict[int, dict[str, Any]], labels: dict[int, dict[str, Any]]) -> float:
    """Median % by which the anchors ran slower (+) or faster (-) than their labels; failed anchors are left out, and
    NaN when none was measured (a chunk no anchor checked is not kept)."""
    ratios = [results[a]["latency_ms"] / labels[a]["latency_ms"] - 1 for a in results if "latency_ms" in results[a]]
    return 100 * float(np.median(ratios)) if ratios else float("nan")


def discordant_ids(directory: Path, max_pass_gap_pct: float, from_id: int = 0) -> list[int]:
    """Measured networks (ids from ``from_id``) whose current label comes from passes A and B that differ by more than
    ``max_pass_gap_pct`` % of the label: a slow spell of a shared host hit one pass. Measuring them again (``redo``)
    replaces their labels; running it twice selects only those still discordant."""
    return sorted(
        i
        for i, r in latest_records(directory).items()
        if i >= from_id and abs(r["a"]["min_ms"] - r["b"]["min_ms"]) > max_pass_gap_pct / 100 * r["latency_ms"]
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=12)
    parser.add_argument(
        "--device", default=DEVICE_NAME, help="device name recorded in meta.json (one name per CPU model and runtime)"
    )
    parser.add_argument("--add-families", nargs="+", metavar="FAMILY", help="extend the dataset with these families")
    parser.add_argument("--from-id", type=int, help="first network id of the extension (after every measured one)")
    parser.add_argument(
        "--drift-check", type=int, default=24, help="before a new extension, measure this many networks again (0: no check)"
    )
    parser.add_argument(
        "--max-drift",
        type=float,
        default=DEFAULT_MAX_DRIFT_PCT,
        help="refuse the extension when the re-measured networks' median drift exceeds this (%%)",
    )
    parser.add_argument(
        "--redo-pass-gap",
        type=float,
        default=None,
        metavar="PCT",
        help="instead of measuring new networks, measure again those (ids from --redo-from) whose passes A and B "
        "differ by more than PCT %% of their label",
    )
    parser.add_argument("--redo-from", type=int, default=0, help="first network id --redo-pass-gap looks at")
    parser.add_argument(
        "--anchors",
        type=int,
        default=0,
        help="earlier networks of the chunk's families measured with every chunk; a chunk whose anchors drift more "
        "than --max-drift from their labels is not kept and is measured again later",
    )
    parser.add_argument("--max-refusals", type=int, default=5, help="stop after this many refused chunks in a row")
    parser.add_argument("--retry-wait", type=float, default=60.0, help="seconds to wait before measuring a refused chunk again")
    args = parser.parse_args(argv)
    if args.redo_pass_gap is not None:
        redo = discordant_ids(args.out, args.redo_pass_gap, args.redo_from)
        print(f"{len(redo)} networks from id {args.redo_from} with passes more than {args.redo_pass_gap} % apart")
        generate(args.out, 0, args.seed, args.chunk, device=args.device, redo=redo, anchors=args.anchors,
                 max_drift_pct=args.max_drift, max_refusals=args.max_refusals, retry_wait_s=args.retry_wait)  # fmt: skip
        return
    if bool(args.add_families) != (args.from_id is not None):
        parser.error("--add-families and --from-id go together")
    extension = {"from_id": args.from_id, "families": args.add_families} if args.add_families else None
    generate(args.out, args.count, args.seed, args.chunk, device=args.device, extension=extension,
             drift_check=args.drift_check, max_drift_pct=args.max_drift, anchors=args.anchors,
             max_refusals=args.max_refusals, retry_wait_s=args.retry_wait)  # fmt: skip


if __name__ == "__main__":
    main()
