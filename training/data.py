"""NB201 training data: arch strings, canonically ordered graphs, encoded arrays and target matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.augment import topological_orders
from model.canonical import canonicalize
from model.ir import ArchGraph
from model.parsers import parse_nb201
from model.tables import file_checksum, read_csv_table
from model.tokenizer import EncodedGraphs, encode_graphs
from training.targets import TARGETS


@dataclass
class ArchDataset:
    """Architectures (canonical node order) with targets; ``y`` is (N, T), NaN where a value is missing."""

    indices: np.ndarray
    arch_strs: list[str]
    graphs: list[ArchGraph]
    encoded: EncodedGraphs
    y: np.ndarray
    target_names: list[str]

    def subset(self, rows: np.ndarray) -> ArchDataset:
        return ArchDataset(
            indices=self.indices[rows],
            arch_strs=[self.arch_strs[i] for i in rows],
            graphs=[self.graphs[i] for i in rows],
            encoded=EncodedGraphs(self.encoded.op_ids[rows], self.encoded.adjacency[rows]),
            y=self.y[rows],
            target_names=self.target_names,
        )

    def orders(self) -> list[np.ndarray]:
        """All valid renumberings of each graph (augmentation pool)."""
        return [topological_orders(g) for g in self.graphs]


def load_nb201(target_names: Sequence[str]) -> ArchDataset:
    """All 15,625 NB201 cells, sorted by official index, with the requested targets."""
    unknown = [t for t in target_names if t not in TARGETS]
    if unknown:
        raise KeyError(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    tables: dict[str, dict[str, list[str]]] = {}
    for name in target_names:
        table = TARGETS[name].table
        if table not in tables:
            tables[table] = read_csv_table(table)
    base = read_csv_table("nb201/accuracy.csv.gz")
    indices = np.asarray(base["index"], dtype=np.int64)
    order = np.argsort(indices)
    indices = indices[order]
    arch_strs = [base["arch_str"][i] for i in order]
    y = np.full((len(indices), len(target_names)), np.nan, dtype=np.float64)
    for t, name in enumerate(target_names):
        target = TARGETS[name]
        columns = tables[target.table]
        row_of = {int(idx): r for r, idx in enumerate(columns["index"])}
        values = columns[target.column]
        for r, idx in enumerate(indices):
            row = row_of.get(int(idx))
            if row is not None and values[row] != "":
                y[r, t] = float(values[row])
    graphs = []
    for arch in arch_strs:
        graph = parse_nb201(arch)
        graphs.append(graph.renumbered(canonicalize(graph).order))
    return ArchDataset(indices, arch_strs, graphs, encode_graphs(graphs), y, list(target_names))


SPACE_TABLES = {"fbnet": "fbnet/latency_help_ms.csv.gz", "ofa": "ofa/latency_help_ms.csv.gz"}


def load_network_space(space: str, target_names: Sequence[str]) -> ArchDataset:
    """All 5,000 networks of HELP's FBNet or OFA table (sorted by index) as chain graphs, with the requested targets.

    ``arch_strs`` holds each network's spec: FBNet layer names, or OFA ``ks|e|d|r``.
    """
    from model.parsers.fbnet import parse_fbnet
    from model.parsers.ofa import parse_ofa

    columns = read_csv_table(SPACE_TABLES[space])
    indices = np.asarray(columns["index"], dtype=np.int64)
    order = np.argsort(indices)
    if space == "fbnet":
        specs = [columns["op_names"][i] for i in order]
        graphs = [parse_fbnet(spec) for spec in specs]
    else:
        specs = [f"{columns['ks'][i]}|{columns['e'][i]}|{columns['d'][i]}|{columns['r'][i]}" for i in order]
        graphs = [parse_ofa(columns["ks"][i], columns["e"][i], columns["d"][i], int(columns["r"][i])) for i in order]
    y = np.full((len(order), len(target_names)), np.nan, dtype=np.float64)
    for t, name in enumerate(target_names):
        values = columns[TARGETS[name].column]
        y[:, t] = [float(values[i]) if values[i] != "" else np.nan for i in order]
    graphs = [g.renumbered(canonicalize(g).order) for g in graphs]
    return ArchDataset(indices[order], specs, graphs, encode_graphs(graphs), y, list(target_names))


NASLIB_NB101_OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")  # NASLib's op codes


def load_naslib_subset(space: str, target_names: Sequence[str]) -> ArchDataset:
    """NASLib's NB101 (500 cells) or NAS-Bench-301 / DARTS (725 cells) subset with its validation accuracy.

    NB101 keys are 49 adjacency bits then 7 op codes (``NASLIB_NB101_OPS``); DARTS keys are [normal, reduce] lists of
    8 (input, op index) pairs, op indices in ``DARTS_OPS`` order. ``arch_strs`` keeps NASLib's key (of the first spec
    of each distinct cell).
    """
    import ast
    import gzip
    import json

    from model.parsers import parse_darts, parse_nb101
    from model.tables import table_path

    table = TARGETS[target_names[0]].table
    with gzip.open(table_path(table), "rt") as handle:
        raw = json.load(handle)
    entries = raw["nasbench101"]["cifar10"] if space == "nb101" else raw["cifar10"]
    keys = sorted(entries)
    graphs = []
    for key in keys:
        spec = ast.literal_eval(key)
        if space == "nb101":
            matrix = [list(spec[r * 7 : r * 7 + 7]) for r in range(7)]
            graphs.append(parse_nb101(matrix, [NASLIB_NB101_OPS[c] for c in spec[49:]]))
        else:
            normal, reduce = ([[op, state] for state, op in cell] for cell in spec)
            graphs.append(parse_darts(normal, reduce))
    # NASLib's NB101 subset holds many specs that prune to the same cell (nodes off every input -> output path):
    # one entry per canonical cell, with the mean accuracy, so no cell is in two of train / validation / test
    groups: dict[str, list[int]] = {}
    canonical = []
    for i, graph in enumerate(graphs):
        form = canonicalize(graph)
        canonical.append(graph.renumbered(form.order))
        groups.setdefault(form.key, []).append(i)
    firsts = [members[0] for members in groups.values()]
    accuracy = np.array([float(entries[k]["val_accuracy"]) for k in keys])
    y = np.array([[accuracy[members].mean()] * len(target_names) for members in groups.values()])
    kept = [canonical[i] for i in firsts]
    return ArchDataset(np.arange(len(firsts)), [keys[i] for i in firsts], kept, encode_graphs(kept), y, list(target_names))


def load_dataset(target_names: Sequence[str]) -> ArchDataset:
    """The whole space of the targets (NB201 cells, HELP's FBNet / OFA networks, NASLib's NB101 / DARTS subsets)."""
    from training.targets import space_of

    space = space_of(list(target_names))
    if space == "nb201":
        return load_nb201(target_names)
    if space in ("nb101", "darts"):
        return load_naslib_subset(space, target_names)
    return load_network_space(space, target_names)


def data_checksums(target_names: Sequence[str]) -> dict[str, str]:
    base = {"nb201/accuracy.csv.gz"} if all(TARGETS[t].table.startswith("nb201/") for t in target_names) else set()
    tables = sorted({*base, *(TARGETS[t].table for t in target_names)})
    return {table: file_checksum(table) for table in tables}
