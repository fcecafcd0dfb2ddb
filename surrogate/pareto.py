"""Pareto fronts and hypervolumes (BoTorch's utilities; objectives in maximisation form)."""

from __future__ import annotations

import torch
from botorch.utils.multi_objective.box_decompositions.dominated import (
    DominatedPartitioning,
)
from botorch.utils.multi_objective.pareto import is_non_dominated


def to_max_form(Y: torch.Tensor, maximize: list[bool]) -> torch.Tensor:
    """Negate minimised objectives: the one place where directions are applied. ``n x m`` -> ``n x m``."""
    sign = torch.tensor([1.0 if m else -1.0 for m in maximize], dtype=Y.dtype)
    return Y * sign


def pareto_mask(Y: torch.Tensor) -> torch.Tensor:
    """Boolean ``n`` mask of the non-dominated rows of ``n x m`` (maximisation form)."""
    if Y.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    return is_non_dominated(Y, deduplicate=False)


def reference_point(Y: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Rule: per objective, the worst observed value minus ``margin`` times the observed range.

    ``n x m`` -> ``m``. Any observed point then improves the hypervolume from an empty front.
    """
    lo, hi = Y.min(dim=0).values, Y.max(dim=0).values
    span = (hi - lo).clamp_min(1e-6 * hi.abs().clamp_min(1.0))
    return lo - margin * span


def hypervolume(Y: torch.Tensor, ref_point: torch.Tensor) -> float:
    """Dominated hypervolume of ``n x m`` points above ``ref_point``."""
    if Y.shape[0] == 0:
        return 0.0
    return float(DominatedPartitioning(ref_point=ref_point, Y=Y).compute_hypervolume())
