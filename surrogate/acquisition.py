"""Selection of the next batch from a discrete pool (everything in maximisation form).

Strategies (named in the campaign file):

``ehvi-topk``
    The published method: analytic expected hypervolume improvement of each candidate
    (BoTorch's ``ExpectedHypervolumeImprovement``), top ``q``. The GP posterior is evaluated in
    chunks (gpytorch 1.15 builds the full test x test kernel otherwise), and BoTorch's EHVI
    algebra is applied to the stored means and variances.
``qlognehvi-greedy``
    A batch that does not crowd one spot: the pool is prefiltered to the best candidates by
    analytic EHVI, then BoTorch's ``optimize_acqf_discrete`` picks ``q`` of them one at a time
    by ``qLogNoisyExpectedHypervolumeImprovement``, each pick conditioned on the earlier ones.
``random``
    Uniform without replacement.

Memory stays flat in the pool size: candidates are read from the pool matrix chunk by chunk
through an index, never copied as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.multi_objective.analytic import ExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.models.model import Model
from botorch.optim.optimize import optimize_acqf_discrete
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

from surrogate.pareto import reference_point

STRATEGIES = ("ehvi-topk", "qlognehvi-greedy", "random")
CHUNK = 500  # posterior chunk: gpytorch builds chunk x chunk test covariances (500 measured fastest here)
GREEDY_PREFILTER = 300  # candidates kept for the greedy batch (per-pick cost is linear in it)
GREEDY_MC_SAMPLES = 128


@dataclass(frozen=True)
class Selection:
    indices: list[int]                 # positions in the candidate list, in pick order
    acquisition: list[float | None]    # EHVI of each pick (None for random picks)
    mean: list[list[float]] | None     # posterior mean per pick (maximisation form)
    std: list[list[float]] | None
    strategy: str


def posterior_moments(model: Model, X: torch.Tensor, rows: torch.Tensor | None = None,
                      chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations of ``X[rows]`` (all rows if ``None``).

    ``X`` is ``n x d``; returns two ``k x m`` tensors. Only ``chunk`` rows are gathered at once.
    """
    k = X.shape[0] if rows is None else rows.shape[0]
    m = model.num_outputs
    mean = torch.empty(k, m, dtype=X.dtype, device=X.device)
    std = torch.empty(k, m, dtype=X.dtype, device=X.device)
    with torch.no_grad():
        for start in range(0, k, chunk):
            stop = min(start + chunk, k)
            Xc = X[start:stop] if rows is None else X[rows[start:stop]]
            post = model.posterior(Xc)
            mean[start:stop] = post.mean
            std[start:stop] = post.variance.clamp_min(1e-12).sqrt()
    return mean, std


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

    ``Y_train`` (``k x m``) defines the current front.
    """
    partitioning = FastNondominatedPartitioning(ref_point=ref_point, Y=Y_train)
    acqf = ExpectedHypervolumeImprovement(model=_StoredPosteriorModel(mean, std), ref_point=ref_point.tolist(),
                                          partitioning=partitioning)
    out = []
    with torch.no_grad():
        for start in range(0, mean.shape[0], chunk):
            idx = torch.arange(start, min(start + chunk, mean.shape[0]), dtype=mean.dtype,
                               device=mean.device).view(-1, 1, 1)
            out.append(acqf(idx))
    return torch.cat(out) if out else torch.empty(0, dtype=mean.dtype)


def _ehvi_topk(q, X, rows, model, Y_train, ref) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mean, std = posterior_moments(model, X, rows)
    scores = ehvi(mean, std, Y_train, ref)
    order = torch.argsort(scores, descending=True)[:q]
    return order, scores, mean, std


def _greedy(q: int, X: torch.Tensor, rows: torch.Tensor, model: Model, X_train: torch.Tensor,
            Y_train: torch.Tensor, ref: torch.Tensor, prefilter: int, seed: int, X_pending: torch.Tensor | None = None):
    order, scores, mean, std = _ehvi_topk(max(prefilter, q), X, rows, model, Y_train, ref)
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=ref.tolist(), X_baseline=X_train, prune_baseline=True, X_pending=X_pending,
        sampler=SobolQMCNormalSampler(torch.Size([GREEDY_MC_SAMPLES]), seed=seed))
    choices = X[rows[order]]
    picked, _ = optimize_acqf_discrete(acqf, q=q, choices=choices, max_batch_size=512, unique=True)
    # map the picked rows back to candidate positions (two polymers may share a descriptor)
    pos: list[int] = []
    for x in picked:
        same = torch.nonzero((choices == x).all(dim=-1))[:, 0].tolist()
        pos.append(next(i for i in same if i not in pos))
    picks = order[pos]
    return picks, scores, mean, std


def select(strategy: str, q: int, X: torch.Tensor, rng: np.random.Generator, model: Model | None = None,
           Y_train: torch.Tensor | None = None, X_train: torch.Tensor | None = None,
           candidates: np.ndarray | torch.Tensor | None = None, ref_point: torch.Tensor | None = None,
           prefilter: int = GREEDY_PREFILTER, X_pending: torch.Tensor | None = None) -> Selection:
    """Pick ``min(q, k)`` distinct candidates.

    Args:
        X: ``n x d`` pool matrix.
        candidates: the ``k`` pool rows that may be picked (all rows if ``None``); the returned
            ``indices`` are positions in this list.
        model, Y_train, X_train: the fitted model and its training data (``Y_train`` in
            maximisation form); ``X_train`` is needed by ``qlognehvi-greedy`` only.
        ref_point: hypervolume reference point; default :func:`surrogate.pareto.reference_point`.
        X_pending: inputs of polymers still being evaluated (``p x d``). Analytic EHVI cannot take
            them, so with pending points both EHVI strategies pick through qLogNEHVI with
            ``X_pending`` (the greedy path), and new picks avoid what is already running.
    """
    rows = (torch.arange(X.shape[0], device=X.device) if candidates is None
            else torch.as_tensor(np.asarray(candidates), dtype=torch.long, device=X.device))
    k = rows.shape[0]
    q = min(q, k)
    if strategy == "random":
        picks = rng.choice(k, size=q, replace=False).tolist()
        return Selection(picks, [None] * q, None, None, strategy)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if model is None or Y_train is None:
        raise ValueError(f"{strategy} needs a fitted model and the training outcomes")
    ref = reference_point(Y_train) if ref_point is None else ref_point
    if strategy == "ehvi-topk" and X_pending is None:
        order, scores, mean, std = _ehvi_topk(q, X, rows, model, Y_train, ref)
    else:
        if X_train is None:
            raise ValueError(f"{strategy} with pending points needs the training inputs")
        order, scores, mean, std = _greedy(q, X, rows, model, X_train, Y_train, ref, prefilter,
                                           seed=int(rng.integers(2**31)), X_pending=X_pending)
    order = order.tolist()
    return Selection(order, [float(scores[i]) for i in order], mean[order].tolist(), std[order].tolist(), strategy)
