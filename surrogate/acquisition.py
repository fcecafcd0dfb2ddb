"""Selection of the next batch from a discrete pool.

``ehvi-topk`` (the published method): analytic expected hypervolume improvement of each
candidate (BoTorch's ``ExpectedHypervolumeImprovement``), top ``q``. The GP posterior is
evaluated in chunks (gpytorch builds the full test x test kernel otherwise), and BoTorch's EHVI
algebra is applied to the stored means and variances. ``random``: uniform without replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.multi_objective.analytic import ExpectedHypervolumeImprovement
from botorch.models.model import Model
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

from surrogate.pareto import reference_point

CHUNK = 1000


@dataclass(frozen=True)
class Selection:
    indices: list[int]                 # rows of the candidate matrix, best first
    acquisition: list[float | None]    # EHVI of each pick (None for random picks)
    mean: list[list[float]] | None     # posterior mean per pick (maximisation form)
    std: list[list[float]] | None
    strategy: str


def posterior_moments(model: Model, X: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations, ``n x d`` -> (``n x m``, ``n x m``), in chunks."""
    means, stds = [], []
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            post = model.posterior(X[start : start + chunk])
            means.append(post.mean)
            stds.append(post.variance.clamp_min(1e-12).sqrt())
    m = model.num_outputs
    if not means:
        return torch.empty(0, m, dtype=X.dtype), torch.empty(0, m, dtype=X.dtype)
    return torch.cat(means), torch.cat(stds)


class _Moments:
    def __init__(self, mean: torch.Tensor, variance: torch.Tensor):
        self.mean, self.variance = mean, variance


class _StoredPosteriorModel(Model):
    """A stand-in model whose inputs are row indices into stored posterior moments."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self._mean, self._var = mean, std**2

    @property
    def num_outputs(self) -> int:
        return self._mean.shape[-1]

    def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None):
        idx = X[..., 0].long()  # b x 1
        return _Moments(self._mean[idx], self._var[idx])


def ehvi(mean: torch.Tensor, std: torch.Tensor, Y_train: torch.Tensor, ref_point: torch.Tensor,
         chunk: int = 100_000) -> torch.Tensor:
    """Analytic EHVI of independent Gaussian candidates, ``n x m`` moments -> ``n``.

    ``Y_train`` (``k x m``) defines the current front; everything is in maximisation form.
    """
    partitioning = FastNondominatedPartitioning(ref_point=ref_point, Y=Y_train)
    acqf = ExpectedHypervolumeImprovement(model=_StoredPosteriorModel(mean, std), ref_point=ref_point.tolist(),
                                          partitioning=partitioning)
    out = []
    with torch.no_grad():
        for start in range(0, mean.shape[0], chunk):
            idx = torch.arange(start, min(start + chunk, mean.shape[0]), dtype=mean.dtype).view(-1, 1, 1)
            out.append(acqf(idx))
    return torch.cat(out) if out else torch.empty(0, dtype=mean.dtype)


def select(strategy: str, q: int, X_cand: torch.Tensor, rng: np.random.Generator,
           model: Model | None = None, Y_train: torch.Tensor | None = None) -> Selection:
    """Pick ``min(q, n)`` distinct rows of ``X_cand`` (``n x d``)."""
    n = X_cand.shape[0]
    q = min(q, n)
    if strategy == "random":
        picks = rng.choice(n, size=q, replace=False).tolist()
        return Selection(picks, [None] * q, None, None, strategy)
    if strategy == "ehvi-topk":
        if model is None or Y_train is None:
            raise ValueError("ehvi-topk needs a fitted model and the training outcomes")
        mean, std = posterior_moments(model, X_cand)
        ref = reference_point(Y_train)
        scores = ehvi(mean, std, Y_train, ref)
        order = torch.argsort(scores, descending=True)[:q].tolist()
        return Selection(order, [float(scores[i]) for i in order], mean[order].tolist(), std[order].tolist(), strategy)
    raise ValueError(f"unknown strategy {strategy!r}: use 'ehvi-topk' or 'random'")
