"""Label-free pre-training: the fusion transformer learns a space's structure before it sees any label.

Every architecture of the space (no accuracy, no latency: only the graphs) is a training example: the whole table
where it covers the space (NB201's 15,625 cells, HELP's FBNet / OFA networks), random cells drawn by the space's
published sampling rule where the table labels only a few hundred (NB101, DARTS: ``model.sampling``). The targets
are its structural properties from ``model.flow`` (connectivity, live paths, parametric depth, live op counts)
and, for NB201, the log FLOPs and parameters of ``model.cell_cost``; for DARTS, the op counts of the normal and of
the reduce cell. Each example is shown in a random valid
node order (the information-flow-consistency augmentation). The encoder weights (everything but the head) then
initialise the supervised run (``TrainConfig.pretrained``, loaded by ``training.trainer.load_encoder``). With 156
labelled NB201 cells this lifts CIFAR-10 Kendall tau from 0.66 to 0.84 (``benchmarks/results/quality/accuracy_sizes.md``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.augment import sample_order, sample_padded_orders, topological_orders
from model.canonical import canonicalize
from model.cell_cost import nb201_cost
from model.flow import ZERO_OPS, cell_op_counts, flow_properties, property_names
from model.ir import ArchGraph
from model.ops import INPUT, OUTPUT
from model.sampling import SAMPLERS, sample_space
from model.tokenizer import EncodedGraphs, encode_graphs, tokenize
from training.data import ArchDataset
from training.network import FusionTransformer, NetworkConfig
from training.trainer import HEAD_PREFIX, to_torch, warmup_linear_decay

RANDOM_CELLS = 20_000
"""Unlabelled cells drawn for a space whose table does not cover it (NB101, DARTS)."""
ENUMERATE_MAX_NODES = 12
"""Graphs up to this size show every valid order (enumerated); larger ones (DARTS: 28 nodes) a pool of sampled ones."""
SAMPLED_ORDERS = 16
PROPERTY_SETS = {"darts": 2}
"""Version of each space's property set (default 1): bumped when ``structure_targets`` changes for that space, so a
cached encoder that learnt the old set is refused rather than reused (DARTS 2: per-cell op counts)."""


def pretraining_set(data: ArchDataset, seed: int = 0, random_cells: int = RANDOM_CELLS) -> ArchDataset:
    """The unlabelled architectures to pre-train on: ``data`` itself, or ``random_cells`` random cells of its space."""
    space = data.graphs[0].space
    if space not in SAMPLERS:
        return data
    graphs = [g.renumbered(canonicalize(g).order) for g in sample_space(space, random_cells, seed)]
    n = len(graphs)
    return ArchDataset(np.arange(n), [f"random {space} cell {i}" for i in range(n)], graphs, encode_graphs(graphs),
                       np.empty((n, 0)), [])  # fmt: skip


def order_pools(graphs: list[ArchGraph], rng: np.random.Generator) -> list[np.ndarray]:
    """Valid node orders per graph: all of them for small graphs, ``SAMPLED_ORDERS`` random ones for large graphs."""
    return [
        topological_orders(g) if g.n <= ENUMERATE_MAX_NODES else np.stack([sample_order(g, rng) for _ in range(SAMPLED_ORDERS)])
        for g in graphs
    ]


def structure_targets(graphs: list[ArchGraph]) -> tuple[np.ndarray, list[str]]:
    """Standardised structural properties of each graph (constant columns dropped) and their names."""
    count_ops = sorted({op for g in graphs for op in g.ops} - {INPUT, OUTPUT} - ZERO_OPS)
    names = property_names(count_ops)
    rows = [flow_properties(g, count_ops) for g in graphs]
    if all(g.space == "nb201" for g in graphs):
        names += ["log_flops", "log_params"]
        costs = [nb201_cost(g) for g in graphs]
        rows = [np.concatenate([r, np.log([c.flops, c.params])]) for r, c in zip(rows, costs, strict=True)]
    if all(g.space == "darts" for g in graphs):  # which cell an op sits in matters: normal vs reduce
        names += [f"{cell}_{op}" for cell in ("normal", "reduce") for op in count_ops]
        rows = [np.concatenate([r, cell_op_counts(g, count_ops)]) for r, g in zip(rows, graphs, strict=True)]
    values = np.stack(rows)
    std = values.std(axis=0)
    keep = std > 1e-12
    standardised = (values[:, keep] - values[:, keep].mean(axis=0)) / std[keep]
    return standardised.astype(np.float32), [n for n, k in zip(names, keep, strict=True) if k]


def pretrain_encoder(
    data: ArchDataset,
    network: dict,
    path: Path,
    steps: int = 2000,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    random_cells: int = RANDOM_CELLS,
) -> Path:
    """Pre-train on the graphs of ``pretraining_set(data, seed)`` (no label is read); save the encoder to ``path``.

    A finished file made with the same settings is reused; one made with other settings is an error (delete it to
    pre-train again). The file is written atomically at the end.
    """
    path = Path(path)
    network = {k: v for k, v in network.items() if k != "node_sum"}  # a readout option: the encoder is the same
    space = data.graphs[0].space
    wanted = {"steps": steps, "seed": seed, "network": network, "space": space, "property_set": PROPERTY_SETS.get(space, 1)}
    if path.exists():
        saved = torch.load(path, weights_only=False)
        older = {"space": "nb201", "property_set": 1}  # what files made before these keys existed hold
        made = {k: saved.get(k, older.get(k)) for k in wanted}
        if made != wanted:
            raise ValueError(f"{path} was pre-trained with {made}, not {wanted}")
        return path
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = pretraining_set(data, seed, random_cells)
    targets, names = structure_targets(data.graphs)
    orders = order_pools(data.graphs, rng)
    length = data.encoded.op_ids.shape[1]
    net = FusionTransformer(NetworkConfig(n_targets=targets.shape[1], **network))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_linear_decay(opt, steps, max(1, steps // 10))
    net.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"pretrain {path.stem}", mininterval=5)
    for _ in bar:
        rows = rng.integers(0, len(targets), batch_size)
        order = sample_padded_orders([orders[r] for r in rows], rng, length)
        batch = tokenize(EncodedGraphs(data.encoded.op_ids[rows], data.encoded.adjacency[rows]), order)
        loss = (net(*to_torch(batch)) - torch.from_numpy(targets[rows])).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    encoder = {k: v for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"encoder": encoder, "properties": names, "losses": losses, **wanted, "graphs": len(data.graphs),
                "seconds": round(time.perf_counter() - start, 1)}, tmp)  # fmt: skip
    tmp.replace(path)
    return path
