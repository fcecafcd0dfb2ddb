"""Selection strategies: one registry, one interface, each with its settings as a typed model.

A campaign file names a strategy by its name (``strategy: qlognehvi-greedy``) or with settings
(``strategy: {name: qlognehvi-greedy, prefilter: 500}``). Every strategy answers
:meth:`Strategy.select` for a :class:`SelectionProblem`; the ones that need a surrogate fit it
themselves (one GP per objective, :func:`surrogate.gp.fit_model`). A new strategy is one class
here, added to :data:`REGISTERED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # torch and BoTorch load when a strategy first selects: campaign files stay quick to read
    import torch
    from botorch.models.model import Model

    from surrogate.acquisition import Selection


@dataclass(frozen=True)
class SelectionProblem:
    """What a strategy chooses from, everything in maximisation form.

    Attributes:
        q: polymers to pick.
        X: ``n x d`` pool matrix.
        candidates: the ``k`` pool rows that may be picked; a :class:`Selection`'s indices are
            positions in this array.
        X_train, Y_train: ``t x d`` inputs and ``t x m`` outcomes of the finished polymers.
        rng: the cycle's random generator.
        X_pending: ``p x d`` inputs of polymers still being evaluated (async mode), or None.
        kernel: the GP kernel (:data:`surrogate.kernels.KERNELS`).
    """

    q: int
    X: torch.Tensor
    candidates: np.ndarray
    X_train: torch.Tensor
    Y_train: torch.Tensor
    rng: np.random.Generator
    X_pending: torch.Tensor | None = None
    kernel: str = "isotropic"

    @property
    def rows(self) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.asarray(self.candidates), dtype=torch.long, device=self.X.device)

    @property
    def k(self) -> int:
        return int(len(self.candidates))


class Strategy(BaseModel):
    """A selection strategy's settings; :meth:`select` picks ``min(q, k)`` distinct candidates."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    needs_model: ClassVar[bool] = True

    def select(self, problem: SelectionProblem, model: Model | None = None) -> Selection:
        """Pick from ``problem``; model strategies fit a GP on its training data unless ``model`` is given."""
        from surrogate.gp import fit_model

        if self.needs_model and model is None:
            model = fit_model(problem.X_train, problem.Y_train, kernel=problem.kernel)
        return self._select(problem, model)

    def _select(self, problem: SelectionProblem, model: Model | None) -> Selection:
        raise NotImplementedError


class RandomStrategy(Strategy):
    """Uniform without replacement (also the initial design of every campaign)."""

    name: Literal["random"] = "random"
    needs_model: ClassVar[bool] = False

    def _select(self, problem: SelectionProblem, model: Model | None) -> Selection:
        from surrogate.acquisition import Selection

        q = min(problem.q, problem.k)
        picks = problem.rng.choice(problem.k, size=q, replace=False).tolist()
        return Selection(picks, [None] * q, None, None, self.name)


class _ModelStrategy(Strategy):
    """A strategy that scores candidates by hypervolume improvement over a reference point."""

    ref_margin: float = Field(default=0.1, ge=0, description="reference point: per objective, the worst observed "
                                                             "value minus this times the observed range")

    def reference(self, problem: SelectionProblem) -> torch.Tensor:
        from surrogate.pareto import reference_point

        return reference_point(problem.Y_train, margin=self.ref_margin)


class QLogNEHVIGreedy(_ModelStrategy):
    """The campaigns' default. Noisy expected hypervolume improvement (qNEHVI; qLogNEHVI with ``log_values``) one pick at a time among
    the best by analytic EHVI; front completion once saturated
    (see :mod:`surrogate.acquisition`)."""

    name: Literal["qlognehvi-greedy"] = "qlognehvi-greedy"
    prefilter: int = Field(default=300, ge=1, description="candidates kept by analytic EHVI (cost is linear in it)")
    mc_samples: int = Field(default=128, ge=1, description="quasi-Monte Carlo samples of qNEHVI")
    saturation: float = Field(default=1e-5, ge=0, description="a pick expected to add less than this fraction of "
                                                              "the hypervolume adds nothing")
    completion_share: float = Field(default=0.5, ge=0, le=1, description="at most this share of a saturated batch "
                                                                         "goes by non-domination probability")
    lazy_chunk: int | None = Field(default=None, ge=1, description="unset: every candidate not yet at 0 is evaluated "
                                   "again for each pick; a number: after the first pick, this many at a time, best last "
                                   "value first, until none left can win (lazy greedy, see the README)")
    observation_noise: bool = Field(default=True, description="prefilter and complete the front by the distribution of "
                                    "a candidate's measurement (GP noise included), not of the latent function")
    log_values: bool = Field(default=False, description="true: pick by qLogNEHVI; false: by BoTorch's plain qNEHVI, the "
                             "same Monte Carlo estimate without the log-space smoothing qLogNEHVI adds for gradients "
                             "(the same quality in the replays at half the time, see the README)")

    def _select(self, problem: SelectionProblem, model: Model | None) -> Selection:
        return self._greedy(problem, model, self.name)

    def _greedy(self, problem: SelectionProblem, model: Model, label: str) -> Selection:
        from surrogate.acquisition import greedy_batch

        q = min(problem.q, problem.k)
        ref = self.reference(problem)
        order, scores, mean, std, n_hv = greedy_batch(
            q, problem.X, problem.rows, model, problem.X_train, problem.Y_train, ref, self.prefilter,
            self.mc_samples, int(problem.rng.integers(2**31)), problem.X_pending, self.saturation,
            self.completion_share, self.lazy_chunk, self.observation_noise, self.log_values)
        if n_hv < q:
            label = f"{label} (hypervolume saturated: last {q - n_hv} by non-domination probability)"
        return _selection(order, scores, mean, std, label)


class EhviBeliever(_ModelStrategy):
    """Analytic EHVI one pick at a time, each pick believed at its predicted value (kriging believer);
    front completion once saturated (see :mod:`surrogate.acquisition`). Pending jobs are believed too."""

    name: Literal["ehvi-believer"] = "ehvi-believer"
    saturation: float = Field(default=1e-5, ge=0, description="a pick expected to add less than this fraction of "
                                                              "the hypervolume adds nothing")
    completion_share: float = Field(default=0.5, ge=0, le=1, description="at most this share of a saturated batch "
                                                                         "goes by non-domination probability")
    observation_noise: bool = Field(default=True, description="score a candidate by the distribution of its "
                                                              "measurement (GP noise included), not of the latent")

    def _select(self, problem: SelectionProblem, model: Model | None) -> Selection:
        from surrogate.acquisition import believer_batch

        q = min(problem.q, problem.k)
        order, scores, mean, std, n_hv = believer_batch(
            q, problem.X, problem.rows, model, problem.Y_train, self.reference(problem), problem.X_pending,
            self.saturation, self.completion_share, self.observation_noise)
        label = self.name if n_hv >= q else (f"{self.name} (hypervolume saturated: last {q - n_hv} by "
                                             f"non-domination probability)")
        return _selection(order, scores, mean, std, label)


class EhviTopK(_ModelStrategy):
    """The published method: analytic EHVI of every candidate (its predicted simulation result, GP noise
    included), top ``q``. Analytic EHVI cannot condition on running jobs: with jobs pending (async mode)
    it picks as ``qlognehvi-greedy`` does, and its label says so."""

    name: Literal["ehvi-topk"] = "ehvi-topk"

    def _select(self, problem: SelectionProblem, model: Model | None) -> Selection:
        if problem.X_pending is not None:
            greedy = QLogNEHVIGreedy(ref_margin=self.ref_margin)  # this strategy's reference point, not the default's
            return greedy._greedy(problem, model, f"{self.name} (jobs pending: by qNEHVI)")
        from surrogate.acquisition import ehvi_topk

        ref = self.reference(problem)
        order, scores, mean, std = ehvi_topk(min(problem.q, problem.k), problem.X, problem.rows, model,
                                             problem.Y_train, ref, observation_noise=True)
        return _selection(order, scores, mean, std, self.name)


def _selection(order: torch.Tensor, scores: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
               label: str) -> Selection:
    from surrogate.acquisition import Selection

    picks = order.tolist()
    return Selection(picks, [float(scores[i]) for i in picks], mean[picks].tolist(), std[picks].tolist(), label)


REGISTERED: tuple[type[Strategy], ...] = (EhviTopK, QLogNEHVIGreedy, EhviBeliever, RandomStrategy)
"""Every strategy a campaign can name: the one list, from which the lookup and the settings' type are built."""

STRATEGIES: dict[str, type[Strategy]] = {cls.model_fields["name"].default: cls for cls in REGISTERED}

StrategySettings = Annotated[Union[REGISTERED], Field(discriminator="name")]  # type: ignore[valid-type]


def make_strategy(settings: str | dict) -> Strategy:
    """A strategy from its name or a mapping of ``name`` and settings (a ValueError names the known ones)."""
    data = {"name": settings} if isinstance(settings, str) else dict(settings)
    cls = STRATEGIES.get(data.get("name"))
    if cls is None:
        raise ValueError(f"unknown strategy {data.get('name')!r}: use one of {', '.join(STRATEGIES)}")
    return cls.model_validate(data)
