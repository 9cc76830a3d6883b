"""Training losses: masked MSE (or its Huber form), pairwise-difference L1 and architecture-consistency L1 (method doc
section 3)."""

from __future__ import annotations

import torch


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, present: torch.Tensor, huber_delta: float | None = None
) -> torch.Tensor:
    """Mean squared error over present (non-missing) target values.

    With ``huber_delta``: the Huber form, scaled to equal the squared error below ``delta`` and growing linearly
    (slope ``2 * delta``) beyond it, so a label far from the rest (a heavy-tailed measurement) pulls no harder than
    one ``delta`` away. Units are those of ``pred`` (normalised targets in training).
    """
    diff = torch.where(present, pred - target, torch.zeros_like(pred))
    return squared_error(diff, huber_delta).sum() / present.sum().clamp(min=1)


def squared_error(diff: torch.Tensor, huber_delta: float | None = None) -> torch.Tensor:
    """``diff ** 2`` per value, or its Huber form beyond ``huber_delta`` (see ``masked_mse``)."""
    if huber_delta is None:
        return diff.pow(2)
    return 2.0 * torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=huber_delta)


def pairwise_difference(
    pred: torch.Tensor, target: torch.Tensor, present: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """L1 between predicted and true differences of random pairs in the batch: |(p_i - p_j) - (y_i - y_j)|."""
    partner = torch.randperm(pred.shape[0], generator=generator)
    both = present & present[partner]
    diff = (pred - pred[partner]) - (target - target[partner])
    return torch.where(both, diff.abs(), torch.zeros_like(diff)).sum() / both.sum().clamp(min=1)


def consistency(pred_a: torch.Tensor, pred_b: torch.Tensor) -> torch.Tensor:
    """L1 between the predictions of an architecture and of its renumbered twin."""
    return (pred_a - pred_b).abs().mean()
