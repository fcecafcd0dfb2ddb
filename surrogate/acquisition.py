"""Selection of the next batch from a discrete pool (everything in maximisation form).

Strategies (named in the campaign file):

``ehvi-topk``
    The published method: analytic expected hypervolume improvement of each candidate
    (BoTorch's ``ExpectedHypervolumeImprovement``), top ``q``. A candidate's distribution is that
    of its simulation's result, the GP's learned noise included (the published scikit-learn GP
    with a white-noise kernel predicts the same way): the latent function alone is overconfident
    on these descriptors (held-out PI1070: mean z^2 of 3-9 for ARD, 2-4 for isotropic). The GP
    posterior is evaluated in chunks (gpytorch 1.15 builds the full test x test kernel otherwise),
    and BoTorch's EHVI algebra is applied to the stored means and variances.
``qlognehvi-greedy``
    A batch that does not crowd one spot: the pool is prefiltered to the best candidates by
    analytic EHVI, then BoTorch's ``optimize_acqf_discrete`` picks them one at a time by
    ``qLogNoisyExpectedHypervolumeImprovement``, each pick conditioned on the earlier ones.
    Once the hypervolume has saturated (the next pick's expected improvement is below
    ``SATURATION`` times the current hypervolume), the rest of the batch, up to
    ``COMPLETION_SHARE`` of it, goes to the candidates most likely to be non-dominated
    (:func:`non_domination_probability`, each pick's posterior mean then joins the front): those
    picks complete the front where it is already dense, where polymers add almost no hypervolume
    but are still Pareto-optimal. The greedy half keeps exploring where the model may be wrong.
``random``
    Uniform without replacement.

Memory stays flat in the pool size: candidates are read from the pool matrix chunk by chunk
through an index, never copied as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.multi_objective.analytic import ExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.models.model import Model
from botorch.optim.optimize import optimize_acqf_discrete
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

from surrogate.pareto import hypervolume, pareto_mask, reference_point

STRATEGIES = ("ehvi-topk", "qlognehvi-greedy", "random")
CHUNK = 500  # posterior chunk: gpytorch builds chunk x chunk test covariances (500 measured fastest here)
GREEDY_PREFILTER = 300  # candidates kept for the greedy batch (per-pick cost is linear in it)
GREEDY_MC_SAMPLES = 128
SATURATION = 1e-5  # a greedy pick expected to add less than this fraction of the hypervolume adds nothing
COMPLETION_SHARE = 0.5  # at most this share of a saturated batch completes the front; the rest stays greedy


@dataclass(frozen=True)
class Selection:
    indices: list[int]                 # positions in the candidate list, in pick order
    acquisition: list[float | None]    # EHVI of each pick (None for random picks)
    mean: list[list[float]] | None     # posterior mean per pick (maximisation form)
    std: list[list[float]] | None
    strategy: str


def posterior_moments(model: Model, X: torch.Tensor, rows: torch.Tensor | None = None,
                      chunk: int = CHUNK, observation_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations of ``X[rows]`` (all rows if ``None``).

    ``X`` is ``n x d``; returns two ``k x m`` tensors. Only ``chunk`` rows are gathered at once.
    With ``observation_noise`` the standard deviations are those of a new measurement (the
    latent function's plus the GP's learned noise).
    """
    k = X.shape[0] if rows is None else rows.shape[0]
    m = model.num_outputs
    mean = torch.empty(k, m, dtype=X.dtype, device=X.device)
    std = torch.empty(k, m, dtype=X.dtype, device=X.device)
    with torch.no_grad():
        for start in range(0, k, chunk):
            stop = min(start + chunk, k)
            Xc = X[start:stop] if rows is None else X[rows[start:stop]]
            post = model.posterior(Xc, observation_noise=observation_noise)
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


def _ehvi_topk(q, X, rows, model, Y_train, ref, observation_noise: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mean, std = posterior_moments(model, X, rows, observation_noise=observation_noise)
    scores = ehvi(mean, std, Y_train, ref)
    order = torch.argsort(scores, descending=True)[:q]
    return order, scores, mean, std


def non_domination_probability(mean: torch.Tensor, std: torch.Tensor, Y_front: torch.Tensor,
                               chunk: int = 100_000) -> torch.Tensor:
    """Probability that each independent Gaussian candidate is not dominated by ``Y_front``.

    ``n x m`` moments, ``k x m`` points (maximisation form) -> ``n``. The region the points
    dominate is split into boxes by BoTorch's ``DominatedPartitioning`` (open towards minus
    infinity); the probability of landing in it is a sum over boxes of products of normal CDF
    differences.
    """
    Y = Y_front[pareto_mask(Y_front)]
    if Y.shape[0] == 0:
        return torch.ones(mean.shape[0], dtype=mean.dtype, device=mean.device)
    floor = Y.min(dim=0).values - 1.0
    lower, upper = DominatedPartitioning(ref_point=floor, Y=Y).hypercell_bounds  # cells x m each
    lower = torch.where(lower <= floor, torch.full_like(lower, -torch.inf), lower)
    normal = torch.distributions.Normal(torch.zeros((), dtype=mean.dtype), torch.ones((), dtype=mean.dtype))
    out = []
    for start in range(0, mean.shape[0], chunk):
        mu, sd = mean[start:start + chunk, None, :], std[start:start + chunk, None, :]  # c x 1 x m
        inside = (normal.cdf((upper - mu) / sd) - normal.cdf((lower - mu) / sd)).prod(dim=-1)  # c x cells
        out.append((1.0 - inside.sum(dim=-1)).clamp(0.0, 1.0))
    return torch.cat(out) if out else torch.empty(0, dtype=mean.dtype)


def _greedy(q: int, X: torch.Tensor, rows: torch.Tensor, model: Model, X_train: torch.Tensor,
            Y_train: torch.Tensor, ref: torch.Tensor, prefilter: int, seed: int, X_pending: torch.Tensor | None = None,
            saturation: float = SATURATION, completion_share: float = COMPLETION_SHARE):
    order, scores, mean, std = _ehvi_topk(max(prefilter, q), X, rows, model, Y_train, ref)
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=ref.tolist(), X_baseline=X_train, prune_baseline=True, X_pending=X_pending,
        sampler=SobolQMCNormalSampler(torch.Size([GREEDY_MC_SAMPLES]), seed=seed))
    choices = X[rows[order]]
    hv = hypervolume(Y_train, ref)
    floor = math.log(saturation * hv) if saturation > 0 and hv > 0 else -math.inf
    base = X_pending if X_pending is not None else choices[:0]
    free = torch.ones(choices.shape[0], dtype=torch.bool)
    pos: list[int] = []
    for _ in range(q):  # one pick at a time, to see each pick's own (incremental) improvement
        x, value = optimize_acqf_discrete(acqf, q=1, choices=choices[free], max_batch_size=512)
        if float(value) < floor and len(pos) >= q - int(completion_share * q):
            break
        # the first free candidate with the picked descriptor (two polymers may share one)
        i = next(i for i in torch.nonzero((choices == x[0]).all(dim=-1))[:, 0].tolist() if free[i])
        pos.append(i)
        free[i] = False
        acqf.set_X_pending(torch.cat([base, choices[pos]]))
    picks = order[pos].tolist()
    if len(picks) < q:  # saturated: complete the front, each pick's mean joining it
        front = torch.cat([Y_train, mean[picks]] + ([posterior_moments(model, X_pending)[0]]
                                                     if X_pending is not None else []))
        taken = torch.zeros(mean.shape[0], dtype=torch.bool)
        taken[picks] = True
        while len(picks) < q:
            p = non_domination_probability(mean, std, front).masked_fill(taken, -1.0)
            i = int(torch.argmax(p))
            picks.append(i)
            taken[i] = True
            front = torch.cat([front, mean[i:i + 1]])
    return torch.tensor(picks, dtype=torch.long), scores, mean, std, len(pos)


def select(strategy: str, q: int, X: torch.Tensor, rng: np.random.Generator, model: Model | None = None,
           Y_train: torch.Tensor | None = None, X_train: torch.Tensor | None = None,
           candidates: np.ndarray | torch.Tensor | None = None, ref_point: torch.Tensor | None = None,
           prefilter: int = GREEDY_PREFILTER, X_pending: torch.Tensor | None = None,
           saturation: float = SATURATION, completion_share: float = COMPLETION_SHARE) -> Selection:
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
        saturation: greedy picks stop when the next one is expected to add less than this fraction
            of the current hypervolume; the rest of the batch, up to ``completion_share`` of it,
            goes by non-domination probability.
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
    label = strategy
    if strategy == "ehvi-topk" and X_pending is None:
        order, scores, mean, std = _ehvi_topk(q, X, rows, model, Y_train, ref, observation_noise=True)
    else:
        if X_train is None:
            raise ValueError(f"{strategy} with pending points needs the training inputs")
        order, scores, mean, std, n_hv = _greedy(q, X, rows, model, X_train, Y_train, ref, prefilter,
                                                 seed=int(rng.integers(2**31)), X_pending=X_pending,
                                                 saturation=saturation, completion_share=completion_share)
        if n_hv < q:
            label = f"{strategy} (hypervolume saturated: last {q - n_hv} by non-domination probability)"
    order = order.tolist()
    return Selection(order, [float(scores[i]) for i in order], mean[order].tolist(), std[order].tolist(), label)
