"""The measured whole-network dataset as training arrays, its splits, and topological-order augmentation.

``load_latency_dataset`` reads a generator directory (``training.netgen.generate``): every network with a valid
measurement, its parsed IR, the order-independent token part, edges and whole-graph features. Splits:
``in_domain`` (random 70/10/20 within every family) and ``leave_out(family)`` (that family is the test set;
validation is 10 % of the other families, so model selection never sees the held-out family).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from tqdm import tqdm

from model.network_tokenizer import (
    GRAPH_FEATURE_DIM,
    TOKENIZER_VERSION,
    edge_arrays,
    graph_features,
    graph_for_version,
    node_part,
)
from model.onnx_graph import NetworkGraph
from training.netgen.files import latest_records, read_graphs
from training.netgen.registry import FAMILY_GROUPS


@dataclass
class LatencyDataset:
    ids: np.ndarray
    families: np.ndarray  # family name per network
    latency_ms: np.ndarray
    pass_a_ms: np.ndarray
    pass_b_ms: np.ndarray
    graphs: list[NetworkGraph]
    nodes: list[np.ndarray]  # (n_i, NODE_PART_DIM)
    edges: list[tuple[np.ndarray, np.ndarray]]
    features: np.ndarray  # (N, GRAPH_FEATURE_DIM)
    tokenizer: str = TOKENIZER_VERSION  # the tokenizer version that made nodes / edges / features
    neighbour_cache: dict = field(default_factory=dict, repr=False)  # (row, hops) -> hop_neighbours

    def neighbours(self, row: int, hops: int) -> sparse.csr_matrix:
        key = (int(row), hops)
        if key not in self.neighbour_cache:
            src, dst = self.edges[row]
            self.neighbour_cache[key] = hop_neighbours(self.nodes[row].shape[0], src, dst, hops)
        return self.neighbour_cache[key]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([n.shape[0] for n in self.nodes])


def load_latency_dataset(
    directory: Path, progress: bool = True, ids_below: int | None = None, tokenizer: str = TOKENIZER_VERSION
) -> LatencyDataset:
    """Every measured network of ``directory``; with ``ids_below`` only those with smaller ids (the dataset as it was
    before a later extension, so a report made then can be reproduced). ``graphs`` are the graphs as exported (the
    baselines read them); ``nodes``, ``edges`` and ``features`` are what tokenizer version ``tokenizer`` makes of
    them (``graph_for_version``)."""
    records = [r for i, r in sorted(latest_records(directory).items()) if ids_below is None or i < ids_below]
    raw_graphs = read_graphs(directory)
    records = [r for r in records if int(r["id"]) in raw_graphs]
    graphs, nodes, edges, features = [], [], [], []
    for record in tqdm(records, desc="tokenize", disable=not progress):
        graph = NetworkGraph.from_dict(raw_graphs[int(record["id"])])
        graphs.append(graph)
        read = graph_for_version(graph, tokenizer)
        nodes.append(node_part(read, max_nodes=read.n))
        edges.append(edge_arrays(read))
        features.append(graph_features(read))
    return LatencyDataset(
        ids=np.array([int(r["id"]) for r in records]),
        families=np.array([r["family"] for r in records]),
        latency_ms=np.array([r["latency_ms"] for r in records]),
        pass_a_ms=np.array([r["a"]["min_ms"] for r in records]),
        pass_b_ms=np.array([r["b"]["min_ms"] for r in records]),
        graphs=graphs,
        nodes=nodes,
        edges=edges,
        features=np.stack(features) if features else np.zeros((0, GRAPH_FEATURE_DIM), np.float32),
        tokenizer=tokenizer,
    )


@dataclass(frozen=True)
class Split:
    name: str
    train: np.ndarray  # row indices into the dataset
    val: np.ndarray
    test: np.ndarray


def split_family_order(families: np.ndarray) -> list[str]:
    """The families in the order splits draw them: the 14 classifier families first, then the dense-prediction ones,
    then the sequence ones, the generation ones, the variants, the streaming ones (the order the datasets grew in),
    each group sorted by name, so an extension leaves the earlier families' draws (and splits) unchanged."""

    def group(name: str) -> int:
        return next((k for k, names in enumerate(FAMILY_GROUPS) if name in names), len(FAMILY_GROUPS))

    return sorted(set(families.tolist()), key=lambda name: (group(name), name))


def in_domain_split(families: np.ndarray, seed: int, val_frac: float = 0.1, test_frac: float = 0.2) -> Split:
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for family in split_family_order(families):
        rows = rng.permutation(np.flatnonzero(families == family))
        n_test, n_val = round(test_frac * len(rows)), round(val_frac * len(rows))
        test += list(rows[:n_test])
        val += list(rows[n_test : n_test + n_val])
        train += list(rows[n_test + n_val :])
    return Split(f"in_domain_seed{seed}", np.sort(train), np.sort(val), np.sort(test))


def aligned_split(target_ids: np.ndarray, source_ids: np.ndarray, source: Split, name: str) -> Split:
    """A split of a dataset measured on another device: each network goes to the part of ``source`` (a split of the
    source dataset) holding the same network key, so a model trained or fine-tuned on either device never saw the
    test networks. Keys are network ids, or ``network_keys`` (id + family) where the datasets may have been extended
    with different families; both datasets must come from the same generator seed. Keys the source lacks go to
    training."""
    part = {i: k for k, rows in enumerate((source.val, source.test)) for i in source_ids[rows].tolist()}
    where = np.array([part.get(i, -1) for i in target_ids.tolist()])
    rows = np.arange(len(target_ids))
    return Split(name, rows[where == -1], rows[where == 0], rows[where == 1])


def aligned_in_domain_split(target: LatencyDataset, source: LatencyDataset) -> Split:
    """``aligned_split`` of ``target`` against the source dataset's in-domain split (seed 0), by id and family (one
    id is one network only within the same family: datasets may be extended with different families).

    A family of which no target network has a key in the source (the target was extended with families the source
    holds under other ids, or not at all) would otherwise go wholly to training and never be tested: those families
    take their own in-domain draw (seed 0, 10 % validation, 20 % test) instead."""
    keys = network_keys(target)
    split = aligned_split(keys, network_keys(source), in_domain_split(source.families, 0), "aligned_in_domain_seed0")
    matched = set(keys.tolist()) & set(network_keys(source).tolist())
    matched_families = {key.split(":", 1)[1] for key in matched}
    unmatched = sorted(set(target.families.tolist()) - matched_families)
    if not unmatched:
        return split
    rows = np.flatnonzero(np.isin(target.families, unmatched))
    own = in_domain_split(target.families[rows], 0)
    parts = [np.setdiff1d(getattr(split, part), rows) for part in ("train", "val", "test")]
    train, val, test = (
        np.sort(np.concatenate([p, rows[getattr(own, part)]])) for p, part in zip(parts, ("train", "val", "test"), strict=True)
    )
    return Split(split.name, train, val, test)


def trained_ids_below(training: dict) -> int:
    """The id bound of the networks a shipped card's predictor saw (its ``training`` block): ``ids_below`` where the
    card records it; older cards trained on contiguous ids, where the network count is that bound."""
    return int(training.get("ids_below", training["networks"]))


def shipping_split(directory: Path, aligned_to: Path | None = None, ids_below: int | None = None) -> tuple[LatencyDataset, Split]:
    """The dataset a shipped network predictor learns from, and its split: in-domain seed 0, or placed by network as
    in ``aligned_to``'s in-domain split (a dataset of the same networks measured on another device); with
    ``ids_below``, the dataset as it was before a later extension."""
    data = load_latency_dataset(directory, progress=False, ids_below=ids_below)
    if aligned_to is None:
        return data, in_domain_split(data.families, 0)
    return data, aligned_in_domain_split(data, load_latency_dataset(aligned_to, progress=False, ids_below=ids_below))


def network_keys(data: LatencyDataset) -> np.ndarray:
    """``"id:family"`` per network: the same key on two devices means the same generated network."""
    return np.array([f"{i}:{f}" for i, f in zip(data.ids.tolist(), data.families.tolist(), strict=True)])


def subsample_train(split: Split, families: np.ndarray, fraction: float, seed: int = 0) -> Split:
    """The same validation and test rows with ``fraction`` of each family's training rows (a learning-curve point)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    if fraction == 1.0:
        return split
    rng = np.random.default_rng(seed)
    keep = []
    for family in sorted(set(families[split.train])):
        rows = split.train[families[split.train] == family]
        keep += list(rng.choice(rows, size=max(1, round(fraction * len(rows))), replace=False))
    return Split(f"{split.name}_train{round(100 * fraction)}pct", np.sort(keep), split.val, split.test)


def train_ids_below(split: Split, ids: np.ndarray, limit: int) -> Split:
    """The same validation and test rows, trained only on networks with ids below ``limit`` (the dataset before an
    extension): with the full split's test rows, what the extension's networks add is measured on one test set."""
    return Split(f"{split.name}_trainidsbelow{limit}", split.train[ids[split.train] < limit], split.val, split.test)


def leave_out_split(families: np.ndarray, family: str, seed: int, val_frac: float = 0.1, val_family: bool = False) -> Split:
    """``family`` is the test set. Validation: ``val_frac`` of the other networks, or with ``val_family`` one other
    whole family drawn by ``seed`` and ``family`` (so checkpoints are chosen for what is tested: networks of an
    unseen family; each test family gets its own draw)."""
    test = np.flatnonzero(families == family)
    if val_family:
        names = sorted(set(families.tolist()))
        others = [f for f in names if f != family]
        held = others[int(np.random.default_rng([seed, names.index(family)]).integers(len(others)))]
        return Split(
            f"leave_out_{family}_valfam_{held}_seed{seed}",
            np.flatnonzero((families != family) & (families != held)),
            np.flatnonzero(families == held),
            test,
        )
    rest = np.random.default_rng(seed).permutation(np.flatnonzero(families != family))
    n_val = round(val_frac * len(rest))
    return Split(f"leave_out_{family}_seed{seed}", np.sort(rest[n_val:]), np.sort(rest[:n_val]), test)


def pretraining_split(source_families: np.ndarray, target_families: np.ndarray, split: Split) -> Split:
    """The split of a dataset on another device that a model trains on first, for one leave-one-family-out ``split``
    of the target dataset (families by row in ``source_families`` / ``target_families``): training on every family
    except the split's held-out and validation families, validation on the validation family's networks (their
    labels on the other device), no test. Nothing of the held-out family is seen on either device."""
    held, val = set(target_families[split.test].tolist()), set(target_families[split.val].tolist())
    if not val.isdisjoint(target_families[split.train].tolist()):
        raise ValueError("pretraining needs a validation family of its own (--val-family)")
    val_rows = np.flatnonzero(np.isin(source_families, sorted(val)))
    if len(val_rows) == 0:
        raise ValueError(f"the pretraining dataset has no network of the validation family {sorted(val)}")
    train = np.flatnonzero(~np.isin(source_families, sorted(held | val)))
    return Split(f"{split.name}__pretrain", train, val_rows, np.array([], dtype=np.int64))


def in_domain_pretraining_split(source_keys: np.ndarray, target_keys: np.ndarray, split: Split) -> Split:
    """The split of a dataset on another device (the same generator's networks) that a model trains on first, for an
    in-domain ``split`` of the target dataset (``network_keys`` by row of each): training on every source network that
    is not a target validation or test network, validation on the target's validation networks (their labels on the
    other device), no test. No target test network is seen on either device."""
    val_rows = np.flatnonzero(np.isin(source_keys, target_keys[split.val]))
    if len(val_rows) == 0:
        raise ValueError("the pretraining dataset holds none of the target's validation networks")
    train = np.flatnonzero(~np.isin(source_keys, np.concatenate([target_keys[split.val], target_keys[split.test]])))
    return Split(f"{split.name}__pretrain", train, val_rows, np.array([], dtype=np.int64))


def hop_neighbours(n: int, src: np.ndarray, dst: np.ndarray, hops: int) -> sparse.csr_matrix:
    """(n, n) boolean: node pairs at most ``hops`` (>= 1) edges apart, edge direction ignored; every node is its own."""
    if hops < 1:
        raise ValueError(f"hops must be at least 1, got {hops}")
    step = sparse.coo_matrix((np.ones(len(src), dtype=np.int32), (src, dst)), shape=(n, n)).tocsr()
    step = ((step + step.T + sparse.identity(n, dtype=np.int32, format="csr")) > 0).astype(np.int32)
    reach = step
    for _ in range(hops - 1):
        reach = ((reach @ step) > 0).astype(np.int32)
    return reach > 0


def random_topological_order(n: int, src: np.ndarray, dst: np.ndarray, rng: random.Random) -> np.ndarray:
    """A uniformly-keyed random topological order (Kahn's algorithm with random priorities)."""
    indegree = np.zeros(n, dtype=np.int64)
    np.add.at(indegree, dst, 1)
    successors: list[list[int]] = [[] for _ in range(n)]
    for s, d in zip(src.tolist(), dst.tolist(), strict=True):
        successors[s].append(d)
    remaining = indegree.tolist()
    ready = [(rng.random(), i) for i in range(n) if remaining[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for nxt in successors[node]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                heapq.heappush(ready, (rng.random(), nxt))
    return np.asarray(order, dtype=np.int64)
