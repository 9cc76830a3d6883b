"""Training losses: masked MSE, pairwise-difference L1 and architecture-consistency L1 (method doc section 3)."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean squared error over present (non-missing) target values."""
    diff = torch.where(present, pred - target, torch.zeros_like(pred))
    return diff.pow(2).sum() / present.sum().clamp(min=1)


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
