"""The cell tokenizer: a batch of DAGs into padded token tensors, vectorised over the batch.

Per node one token = [op code | self-position code | sum of predecessor position codes] (3 x 64 = 192 dims);
the input node's source code is the code of position -1. Codes are sinusoidal with frequencies 2*pi*j/64,
j = 1..32, which makes integer codes quasi-orthogonal (the dot product of two different codes is 0 or -1
against a norm of 32), so a sum of predecessor codes still identifies the predecessor set. Each sequence also
gets a depth code (the code of its node count); the network turns it into the prepended depth token and adds
the end token. Sequences are padded to the longest in the batch with a boolean mask (True = real node).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.errors import ArchitectureError
from model.ir import DEFAULT_MAX_NODES, ArchGraph
from model.ops import VOCAB_SIZE, op_code

CODE_DIM = 64
TOKEN_DIM = 3 * CODE_DIM
_FREQUENCIES = 2.0 * np.pi * np.arange(1, CODE_DIM // 2 + 1) / CODE_DIM


def integer_code(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """Quasi-orthogonal sinusoidal codes of integers (period 64): shape (..., 64), float32."""
    angles = np.asarray(values, dtype=np.float64)[..., None] * _FREQUENCIES
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


_OP_TABLE = integer_code(np.arange(VOCAB_SIZE))
_POSITION_TABLE = integer_code(np.arange(-1, DEFAULT_MAX_NODES))  # row k = position k - 1
_COUNT_TABLE = integer_code(np.arange(DEFAULT_MAX_NODES + 1))  # row k = code of a k-node graph (the depth code)


@dataclass(frozen=True)
class TokenBatch:
    """Model inputs: ``tokens`` (B, L, 192) float32, ``mask`` (B, L) bool, ``depth`` (B, 64) float32."""

    tokens: np.ndarray
    mask: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True)
class EncodedGraphs:
    """Graphs as integer arrays: ``op_ids`` (B, L) (-1 = padding) and ``adjacency`` (B, L, L)."""

    op_ids: np.ndarray
    adjacency: np.ndarray


def encode_graphs(graphs: Sequence[ArchGraph]) -> EncodedGraphs:
    """Op codes and adjacency of graphs in their given (topological) node order, padded to the longest."""
    if not graphs:
        raise ArchitectureError("empty_batch", "no architectures to tokenize")
    length = max(g.n for g in graphs)
    if length > DEFAULT_MAX_NODES:
        raise ArchitectureError("too_large", f"graph has {length} nodes, the tokenizer limit is {DEFAULT_MAX_NODES}")
    op_ids = np.full((len(graphs), length), -1, dtype=np.int64)
    adjacency = np.zeros((len(graphs), length, length), dtype=np.float32)
    # one flat index assignment for the whole batch: (graph, node) of every op and (graph, src, dst) of every edge
    codes = [op_code(node.op) for graph in graphs for node in graph.nodes]
    rows = np.repeat(np.arange(len(graphs)), [graph.n for graph in graphs])
    starts = np.cumsum([0] + [graph.n for graph in graphs])
    op_ids[rows, np.arange(len(codes)) - starts[rows]] = codes
    edges = [edge for graph in graphs for edge in graph.edges]
    if edges:
        edge_rows = np.repeat(np.arange(len(graphs)), [len(graph.edges) for graph in graphs])
        src, dst = np.asarray(edges).T
        if (src >= dst).any():
            raise ArchitectureError("not_topological", "graph nodes must be in topological order to tokenize")
        adjacency[edge_rows, src, dst] = 1.0
    return EncodedGraphs(op_ids=op_ids, adjacency=adjacency)


def tokenize(encoded: EncodedGraphs, orders: np.ndarray | None = None) -> TokenBatch:
    """Tokens of encoded graphs; ``orders`` (B, L) optionally renumbers each graph first (augmentation).

    ``orders[b, k]`` is the old index of the node placed at position k; padding positions must map to themselves.
    """
    op_ids, adjacency = encoded.op_ids, encoded.adjacency
    if orders is not None:
        rows = np.arange(len(op_ids))[:, None]
        op_ids = op_ids[rows, orders]
        adjacency = adjacency[rows[:, :, None], orders[:, :, None], orders[:, None, :]]
    batch, length = op_ids.shape
    mask = op_ids >= 0
    positions = _POSITION_TABLE[1 : length + 1]  # codes of positions 0..L-1
    tokens = np.empty((batch, length, TOKEN_DIM), dtype=np.float32)
    tokens[..., :CODE_DIM] = _OP_TABLE[np.where(mask, op_ids, 0)]
    tokens[..., CODE_DIM : 2 * CODE_DIM] = positions
    # sum of the predecessors' position codes: (B, L, L)^T @ (L, 64); the input node's source is position -1
    np.matmul(adjacency.transpose(0, 2, 1), positions, out=tokens[..., 2 * CODE_DIM :])
    tokens[:, 0, 2 * CODE_DIM :] = _POSITION_TABLE[0]
    tokens[~mask] = 0.0
    return TokenBatch(tokens=tokens, mask=mask, depth=_COUNT_TABLE[mask.sum(axis=1)])


def tokenize_graphs(graphs: Sequence[ArchGraph]) -> TokenBatch:
    """Tokens of graphs in their given order (callers pass canonically ordered graphs)."""
    return tokenize(encode_graphs(graphs))
