"""Cost-aware choice between a QM screen and an MD job: expected hypervolume improvement per unit of cost.

A property job is two stages of very different cost: the QM stage (the polarizabilities) and the MD stage (the
cell's density, and the MD objectives). The front is made of polymers whose MD has run; a QM screen adds nothing to
it by itself, but it fixes the polarizability, so the polymer's refractive index is then uncertain only through its
density (:mod:`surrogate.physics`), and an MD job is spent only on a polymer that still looks worth it.

Each cycle, every open polymer is one action:

* **QM done, no MD**: run its MD. Value: its analytic EHVI (with its QM-informed predictive); cost ``md``.
* **Nothing yet**: either a whole property job (both stages now; value its EHVI, cost ``qm + md``), or a screen by
  QM, its MD run later only if the screen leaves it worth an MD job. The screen's
  outcome is looked ahead at ``J`` quadrature nodes of its QM result's predictive (the moments the polymer would
  have after the screen, :meth:`surrogate.physics.RefractiveIndexModel.after_screen`): at node ``j`` its MD would
  be run if its EHVI then, per MD cost, reaches the threshold ``tau`` (the value per cost of the last MD job the
  cycle's budget could buy among the polymers screened already; 0 when none is). Value: the expected EHVI over the
  nodes where it would run; cost ``qm + P(run) * md``. The better of the two per cost is the polymer's action (the
  whole job on a tie: it adds to the front a cycle sooner).

Actions are taken by value per cost, best first, until the cycle's budget is spent (an action that does not fit is
skipped; cheaper ones may still fit). A screen that cannot change the decision (the QM says little about the
objectives: Cp, a modulus) ties with the whole job and loses to it, so campaigns whose objectives the QM does not
inform run as the one-fidelity loop does. Where every value is zero (the
hypervolume has saturated) the probability of non-domination per cost orders the actions instead.

Why not BoTorch's multi-fidelity acquisitions (MOMF, multi-fidelity HVKG): they model one quantity observed at
several fidelities by a GP over (x, fidelity). Here the fidelities measure different things (the QM gives alpha,
never n or Cp) that physics combines exactly (Lorentz-Lorenz); the composite model uses that, and EHVI per cost on
its predictive is cheap on a 1,000-polymer pool where a knowledge-gradient look-ahead per candidate is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from surrogate.acquisition import ehvi, non_domination_probability

if TYPE_CHECKING:
    from surrogate.objectives import Objectives
    from surrogate.physics import Fidelities

QM, MD, JOB = "qm", "md", "job"  # a screen, an MD job after a screen, both stages at once (a classic property job)


@dataclass(frozen=True)
class StageCosts:
    """Cost of one polymer's QM stage and of its MD stage (charges, cell, equilibration, sampling), same units."""

    qm: float
    md: float

    def __post_init__(self):
        if not (self.qm > 0 and self.md > 0):
            raise ValueError(f"stage costs must be positive, got qm={self.qm}, md={self.md}")

    @property
    def job(self) -> float:
        """A one-fidelity property job: both stages."""
        return self.qm + self.md


@dataclass(frozen=True)
class Plan:
    """A cycle's actions: ``rows[i]`` gets ``stages[i]`` (``"qm"``, ``"md"`` or ``"job"``: both), by ``scores[i]``."""

    rows: list[int]
    stages: list[str]
    scores: list[float]
    cost: float

    def of(self, stage: str) -> list[int]:
        return [r for r, s in zip(self.rows, self.stages) if s == stage]


def screen_nodes(J: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Hermite nodes and weights for a standard normal (probabilists'; the weights sum to 1)."""
    import numpy as np

    nodes, weights = np.polynomial.hermite_e.hermegauss(J)
    return torch.as_tensor(nodes, dtype=torch.float64), torch.as_tensor(weights / weights.sum(), dtype=torch.float64)


def plan_cycle(rows: torch.Tensor, screened: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
               after_mean: torch.Tensor, after_std: torch.Tensor, weights: torch.Tensor, Y_front: torch.Tensor,
               ref: torch.Tensor, costs: StageCosts, budget: float) -> Plan:
    """Actions for one cycle within ``budget``.

    Args:
        rows: ``k`` open pool rows (no MD yet).
        screened: ``k`` booleans, True where the QM has run (the action is MD), else a screen or a whole job.
        mean, std: ``k x m`` predictive moments now, in maximisation form.
        after_mean, after_std: ``J x k x m``: the moments after a screen whose result falls at each of ``J`` nodes
            (maximisation form); weights: ``J`` quadrature weights summing to 1.
        Y_front: ``t x m`` measured values (maximisation form) of the polymers with MD; ref: ``m`` reference point.
        costs: the two stages' costs; budget: what the cycle may spend, in the same units.

    Returns:
        The :class:`Plan`, best action first.
    """
    k, J = len(rows), len(weights)
    now_value = ehvi(mean, std, Y_front, ref)
    md_score = now_value / costs.md
    affordable = max(1, int(budget // costs.md))
    ranked = torch.sort(md_score[screened], descending=True).values
    tau = float(ranked[min(affordable, len(ranked)) - 1]) if len(ranked) else 0.0
    after = ehvi(after_mean.reshape(J * k, -1), after_std.reshape(J * k, -1), Y_front, ref).reshape(J, k)
    run = (after > 0) & (after / costs.md >= tau)
    p_run = (weights.view(J, 1) * run).sum(dim=0)
    screen_value = (weights.view(J, 1) * after * run).sum(dim=0)
    job_score = now_value / costs.job
    screen_score = screen_value / (costs.qm + p_run * costs.md)
    screen = ~screened & (screen_score > job_score * (1 + 1e-9))
    action = [MD if screened[i] else QM if screen[i] else JOB for i in range(k)]
    cost = torch.tensor([{MD: costs.md, QM: costs.qm + float(p_run[i]) * costs.md, JOB: costs.job}[a]
                         for i, a in enumerate(action)], dtype=mean.dtype)
    score = torch.where(screened, md_score, torch.where(screen, screen_score, job_score))
    now = torch.tensor([{MD: costs.md, QM: costs.qm, JOB: costs.job}[a] for a in action], dtype=mean.dtype)
    pnd = non_domination_probability(mean, std, Y_front)
    order = sorted(range(k), key=lambda i: (float(score[i]), float(pnd[i] / cost[i])), reverse=True)
    picked, left = [], budget
    for i in order:
        if now[i] <= left + 1e-12:
            picked.append(i)
            left -= float(now[i])
    return Plan([int(rows[i]) for i in picked], [action[i] for i in picked],
                [float(score[i]) for i in picked], budget - left)


def plan_fidelities(X: torch.Tensor, data: Fidelities, objectives: Objectives, rows: list[int], costs: StageCosts,
                    budget: float, kernel: str = "isotropic",
                    ref_margin: float = 0.1) -> tuple[Plan, torch.Tensor, torch.Tensor]:
    """A cycle's plan from what is known by fidelity: the physics-informed model of :mod:`surrogate.physics` fitted
    on ``data``, its moments now and after a screen for the open ``rows`` of ``X`` (``n x d``), then
    :func:`plan_cycle` against the measured front (reference point: worst minus ``ref_margin`` of the range).

    Returns:
        The plan, and the ``k x m`` predictive means (maximisation form) and sds of ``rows``.
    """
    from surrogate.pareto import reference_point
    from surrogate.physics import RefractiveIndexModel

    model = RefractiveIndexModel(X, data, objectives.names, kernel=kernel)
    open_rows = torch.tensor(rows, dtype=torch.long)
    nodes, weights = screen_nodes()
    mean, sd, after_mean, after_sd = model.predict_with_screens(open_rows, nodes)
    sign = torch.tensor([objectives.sign(n) for n in objectives.names], dtype=torch.float64)
    Y_front = torch.stack([data.density if n == "density" else data.md_values[n] for n in objectives.names],
                          dim=1) * sign
    known = set(data.qm_rows.tolist())
    screened = torch.tensor([r in known for r in rows], dtype=torch.bool)
    plan = plan_cycle(open_rows, screened, mean * sign, sd, after_mean * sign, after_sd, weights, Y_front,
                      reference_point(Y_front, margin=ref_margin), costs, budget)
    return plan, mean * sign, sd
