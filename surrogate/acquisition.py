"""The acquisition algebra behind the selection strategies (everything in maximisation form).

The strategies themselves, with their settings, are in :mod:`surrogate.strategies`:

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
    analytic EHVI, then they are picked one at a time by BoTorch's Monte Carlo noisy expected hypervolume
    improvement (plain ``qNoisyExpectedHypervolumeImprovement`` by default, the strategy's name notwithstanding;
    ``qLogNoisyExpectedHypervolumeImprovement`` with ``log_values``), each pick conditioned on the earlier ones (pending;
    optionally lazily: only the candidates whose last value could still beat the best are evaluated again).
    The GP's joint posterior over training points and candidates is computed once
    (:class:`JointPosteriorModel`).
    Once the hypervolume has saturated (the next pick's expected improvement is below
    ``saturation`` times the current hypervolume), the rest of the batch, up to
    ``completion_share`` of it, goes to the candidates most likely to be non-dominated
    (:func:`non_domination_probability`, each pick's posterior mean then joins the front): those
    picks complete the front where it is already dense, where polymers add almost no hypervolume
    but are still Pareto-optimal. The greedy half keeps exploring where the model may be wrong.
``ehvi-believer``
    Analytic EHVI one pick at a time, each pick "believed" (kriging believer): its predicted
    value joins the front and the GP is conditioned on it at that value, which leaves the
    posterior mean unchanged and shrinks the variance of similar polymers; the next pick's EHVI
    is computed against both. A batch spread along the front at the cost of ``q`` posterior
    passes (no Monte Carlo), with the same front completion once the hypervolume saturates.
``random``
    Uniform without replacement.

Memory stays flat in the pool size: candidates are read from the pool matrix chunk by chunk
through an index, never copied as a whole.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from botorch.acquisition.multi_objective.analytic import ExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.logei import (
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.monte_carlo import qNoisyExpectedHypervolumeImprovement
from botorch.exceptions.warnings import NumericsWarning
from botorch.models.gpytorch import GPyTorchModel
from botorch.models.model import Model
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.dominated import (
    DominatedPartitioning,
)
from botorch.utils.multi_objective.box_decompositions.non_dominated import (
    FastNondominatedPartitioning,
)

from surrogate.pareto import hypervolume, pareto_mask

CHUNK = 500  # posterior chunk: gpytorch builds chunk x chunk test covariances (500 measured fastest here)


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


class JointPosteriorModel(GPyTorchModel):
    """A model's joint posterior over a fixed set of points, computed once; inputs are row indices into the set.

    qLogNEHVI evaluates, for every candidate, the joint posterior of (baseline, pending, candidate)
    and BoTorch recomputes the baseline block each time (its own TODO). Over a discrete candidate set
    every such posterior is a sub-block of one ``s x s`` covariance per objective: indexing it gives
    the same Gaussian as a GP prediction would. As a ``GPyTorchModel`` it lets qLogNEHVI cache the
    baseline's Cholesky factor and update it per candidate (``cache_root``). Memory: ``m s^2`` numbers
    (``s`` = training + pending + candidates).
    """

    def __init__(self, model: Model, X: torch.Tensor):
        """``model``: a ``ModelListGP`` of single-output GPs; ``X``: the ``s x d`` points."""
        super().__init__()
        with torch.no_grad():
            posteriors = [sub.posterior(X) for sub in model.models]
        self._mean = torch.stack([p.mean[..., 0] for p in posteriors])  # m x s
        self._cov = torch.stack([p.distribution.covariance_matrix for p in posteriors])  # m x s x s

    @property
    def num_outputs(self) -> int:
        return self._mean.shape[0]

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None):
        """``batch x q x 1`` row indices -> the joint ``GPyTorchPosterior`` of those rows (``batch x q x m``).

        Only the latent function's posterior over all outputs is stored: asking for a subset of outputs or for
        observation noise is refused rather than answered with the wrong distribution."""
        if output_indices is not None or observation_noise is not False or posterior_transform is not None:
            raise NotImplementedError("JointPosteriorModel stores the latent posterior of every output only")
        from botorch.posteriors.gpytorch import GPyTorchPosterior
        from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
        from linear_operator import to_linear_operator

        idx = X[..., 0].long()
        mvns = [MultivariateNormal(self._mean[j][idx],  # a linear operator: sampling adds jitter where needed
                                   to_linear_operator(self._cov[j][idx.unsqueeze(-1), idx.unsqueeze(-2)]))
                for j in range(self.num_outputs)]
        return GPyTorchPosterior(MultitaskMultivariateNormal.from_independent_mvns(mvns))


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


def ehvi_topk(q: int, X: torch.Tensor, rows: torch.Tensor, model: Model, Y_train: torch.Tensor, ref: torch.Tensor,
              observation_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``q`` rows of ``X[rows]`` with the highest analytic EHVI: ``(order, scores, mean, std)``,
    ``order`` indexing ``rows``, the others one entry per row (``k``, ``k x m``, ``k x m``)."""
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


def _believe(model: Model, X: torch.Tensor) -> Model:
    """``model`` conditioned on observations at its own posterior means at ``X`` (``p x d``): the kriging believer."""
    if X.shape[0] == 0:
        return model
    from botorch.models import ModelListGP

    with torch.no_grad():
        mean = model.posterior(X).mean  # p x m, original outcome space
    return ModelListGP(*[sub.condition_on_observations(X, mean[:, j:j + 1]) for j, sub in enumerate(model.models)])


def complete_front(q: int, picks: list[int], mean: torch.Tensor, std: torch.Tensor, front: torch.Tensor) -> list[int]:
    """Fill ``picks`` up to ``q`` with the candidates most likely to be non-dominated, each pick's mean then
    joining ``front`` (``k x m`` moments, ``f x m`` front; returns the positions, in pick order)."""
    picks = list(picks)
    taken = torch.zeros(mean.shape[0], dtype=torch.bool)
    taken[picks] = True
    front = torch.cat([front, mean[picks]])
    while len(picks) < min(q, mean.shape[0]):
        p = non_domination_probability(mean, std, front).masked_fill(taken, -1.0)
        i = int(torch.argmax(p))
        picks.append(i)
        taken[i] = True
        front = torch.cat([front, mean[i:i + 1]])
    return picks


def believer_batch(q: int, X: torch.Tensor, rows: torch.Tensor, model: Model, Y_train: torch.Tensor,
                   ref: torch.Tensor, X_pending: torch.Tensor | None, saturation: float, completion_share: float,
                   observation_noise: bool = True):
    """Analytic EHVI one pick at a time, each pick believed at its predicted value (module docstring).

    ``X`` is ``n x d``, ``rows`` the ``k`` candidate rows, ``Y_train`` ``t x m`` (maximisation form),
    ``X_pending`` ``p x d`` or None (believed first). Returns ``(picks, scores, mean, std, n_hv)``:
    ``picks`` index ``rows``; ``scores``, ``mean`` and ``std`` (``k``, ``k x m``, ``k x m``) are the
    first pass's (observation noise included); ``n_hv`` picks were by EHVI.
    """
    pending = X_pending if X_pending is not None else X[:0]
    believed = _believe(model, pending)
    mean, std0 = posterior_moments(believed, X, rows, observation_noise=observation_noise)  # believing keeps the mean
    front = torch.cat([Y_train, posterior_moments(model, pending)[0]]) if pending.shape[0] else Y_train
    scores0 = ehvi(mean, std0, front, ref)
    scores = scores0
    hv = hypervolume(front, ref)
    taken = torch.zeros(mean.shape[0], dtype=torch.bool)
    picks: list[int] = []
    for _ in range(min(q, mean.shape[0])):
        if picks:  # the believed picks: new front, shrunken variances
            believed = _believe(believed, X[rows[picks[-1:]]])
            _, std = posterior_moments(believed, X, rows, observation_noise=observation_noise)
            scores = ehvi(mean, std, front, ref)
        scores = scores.masked_fill(taken, -torch.inf)
        i = int(torch.argmax(scores))
        if float(scores[i]) < saturation * hv and len(picks) >= q - int(completion_share * q):
            break
        picks.append(i)
        taken[i] = True
        front = torch.cat([front, mean[i:i + 1]])
    n_hv = len(picks)
    if n_hv < q:  # saturated: complete the front
        picks = complete_front(q, picks, mean, std0, front[:front.shape[0] - n_hv])
    return torch.tensor(picks, dtype=torch.long), scores0, mean, std0, n_hv


def _lazy_argmax(acqf, choices: torch.Tensor, free: torch.Tensor, last: torch.Tensor, chunk: int,
                 first_chunk: int = 512, settled: float = -math.inf) -> tuple[int, float]:
    """The best free choice by ``acqf``, evaluating as few as needed (lazy greedy, Minoux 1978).

    A candidate's expected hypervolume improvement can only shrink as picks join the pending set
    (hypervolume is submodular), so its ``last`` value bounds its current one: free choices are
    evaluated ``chunk`` at a time in order of ``last`` until the best found is at least every
    remaining bound (never-evaluated ones, ``last = inf``, go first, ``first_chunk`` at a time).
    A choice whose ``last`` is at or below ``settled`` (0 for plain qNEHVI: no sample improved it) is not
    evaluated again; when nothing beats ``settled``, the first such free choice in index order is returned.
    ``choices`` is ``k x 1``, ``free`` a ``k`` mask; ``last`` (``k``) is updated in place.
    """
    order = torch.nonzero(free & (last > settled))[:, 0]
    order = order[torch.argsort(last[order], descending=True, stable=True)]
    best_i, best, start = -1, -math.inf, 0
    while start < order.shape[0] and best < float(last[order[start]]):
        fresh = math.isinf(float(last[order[start]]))
        batch = order[start:start + (first_chunk if fresh else chunk)]
        if fresh:  # never-evaluated ones only: the rest have bounds to test against what these give
            batch = batch[torch.isinf(last[batch])]
        with torch.no_grad():
            values = acqf(choices[batch].unsqueeze(1))
        last[batch] = values
        j = int(torch.argmax(values))
        if float(values[j]) > best:
            best_i, best = int(batch[j]), float(values[j])
        start += batch.shape[0]
    if best <= settled:  # nothing beats the settled choices: they tie, in index order (prefilter order)
        tied = torch.nonzero(free & (last <= settled))[:, 0]
        if tied.shape[0]:
            return int(tied[0]), float(last[tied[0]])
    return best_i, best


def prune_baseline(model: Model, X: torch.Tensor, ref: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """The rows of ``X`` (``n x d``) that are Pareto-optimal and above ``ref`` in at least one of ``num_samples``
    quasi-random joint posterior samples: ``n' x d``.

    BoTorch's ``prune_inferior_points_multi_objective`` (what ``prune_baseline=True`` calls, with its 2,048
    samples and ``max_frac`` 1), with the Pareto masks of :func:`surrogate.pareto.pareto_mask` (a sort for two
    objectives: 0.09 s against BoTorch's row loop's 0.94 s on 2,048 samples of 200 rows) and a seeded sampler.
    """
    with torch.no_grad():
        posterior = model.posterior(X)
        samples = SobolQMCNormalSampler(torch.Size([num_samples]), seed=seed)(posterior)  # num_samples x n x m
    keep = (pareto_mask(samples) & (samples > ref).all(dim=-1)).any(dim=0)
    return X[keep]


def greedy_batch(q: int, X: torch.Tensor, rows: torch.Tensor, model: Model, X_train: torch.Tensor,
                 Y_train: torch.Tensor, ref: torch.Tensor, prefilter: int, mc_samples: int, seed: int,
                 X_pending: torch.Tensor | None, saturation: float, completion_share: float,
                 lazy_chunk: int | None = None, observation_noise: bool = True, log_values: bool = False):
    """One pick at a time by qNEHVI among the ``prefilter`` best by analytic EHVI, then (once the
    hypervolume saturates) by non-domination probability; see :class:`surrogate.strategies.QLogNEHVIGreedy`.
    With ``lazy_chunk`` each pick after the first is found lazily (:func:`_lazy_argmax`, that many at a time).
    With ``observation_noise`` the prefilter and the front completion score a candidate by the distribution
    of its measurement (GP noise included), as ``ehvi-believer`` does; qNEHVI itself samples the latent function.

    The picks are by BoTorch's plain ``qNoisyExpectedHypervolumeImprovement`` (with ``log_values``: by qLogNEHVI,
    the same Monte Carlo estimate with a log-space smoothing meant for gradient-based optimisation; over a discrete
    set it only costs time). Candidates no sample improves tie at 0 and go in prefilter (analytic EHVI) order; once at 0
    a candidate is not evaluated again for the batch (hypervolume improvement only shrinks as pending picks join the
    front), which saves a third to a half of the evaluations in the replays.

    Returns ``(picks, scores, mean, std, n_hv)``: ``picks`` index ``rows``; ``n_hv`` picks were greedy.
    """
    order, scores, mean, std = ehvi_topk(max(prefilter, q), X, rows, model, Y_train, ref, observation_noise)
    t, p = X_train.shape[0], 0 if X_pending is None else X_pending.shape[0]
    points = torch.cat([X_train] + ([X_pending] if p else []) + [X[rows[order]]])  # baseline, pending, choices
    index = torch.arange(points.shape[0], dtype=points.dtype).unsqueeze(-1)  # s x 1: the stand-in's inputs
    joint = JointPosteriorModel(model, points)
    with warnings.catch_warnings():  # BoTorch advises the log version to every caller; its reason is gradients
        warnings.simplefilter("ignore", NumericsWarning)
        acqf = (qLogNoisyExpectedHypervolumeImprovement if log_values else qNoisyExpectedHypervolumeImprovement)(
            model=joint, ref_point=ref.tolist(), X_baseline=prune_baseline(joint, index[:t], ref, 2048, seed),
            prune_baseline=False, X_pending=index[t:t + p] if p else None,
            sampler=SobolQMCNormalSampler(torch.Size([mc_samples]), seed=seed))
    choices = index[t + p:]
    hv = hypervolume(Y_train, ref)
    floor = -math.inf  # a pick below it adds nothing (on the acquisition's own scale)
    if saturation > 0 and hv > 0:
        floor = math.log(saturation * hv) if log_values else saturation * hv
    last = torch.full((choices.shape[0],), math.inf, dtype=points.dtype)  # each choice's latest value
    settled = -math.inf if log_values else 0.0  # a value no sample improves (plain qNEHVI: exactly 0)
    free = torch.ones(choices.shape[0], dtype=torch.bool)
    pos: list[int] = []
    for _ in range(q):  # one pick at a time, to see each pick's own (incremental) improvement
        if lazy_chunk is None:  # every free candidate again (512 at a time), but one no sample improved stays at 0:
            # its improvement can only shrink as picks join the front (qLogNEHVI has no exact 0: all again)
            last[last > settled] = math.inf
        i, value = _lazy_argmax(acqf, choices, free, last, lazy_chunk or 512, settled=settled)
        if value < floor and len(pos) >= q - int(completion_share * q):
            break
        pos.append(i)
        free[i] = False
        acqf.set_X_pending(torch.cat([index[t:t + p], choices[pos]]))
    picks = order[pos].tolist()
    if len(picks) < q:  # saturated: complete the front, each pick's mean joining it
        front = torch.cat([Y_train] + ([posterior_moments(model, X_pending)[0]] if X_pending is not None else []))
        picks = complete_front(q, picks, mean, std, front)
    return torch.tensor(picks, dtype=torch.long), scores, mean, std, len(pos)
