"""A ``qm-first`` campaign's cycle: what is known of the pool by fidelity, what each stage costs, what to run.

The initial design is whole property jobs (as in a batch campaign). Every later cycle spends what ``batch_size``
property jobs cost, split between QM screens (the QM stage alone, its result stored as soon as it arrives), MD jobs
of screened polymers (in the screen's directory: its QM is read back) and whole jobs, by expected hypervolume
improvement per cost (:func:`surrogate.multifidelity.plan_cycle`) on the physics-informed model of
:mod:`surrogate.physics`. Stage costs are predicted from the measured stage times of finished jobs
(:mod:`workflow.campaign.costs`), or, in an oracle replay, taken from ``oracle.stage_core_seconds``.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass

import numpy as np
import torch

from surrogate.multifidelity import JOB, MD, QM, StageCosts, plan_fidelities
from surrogate.physics import Fidelities
from workflow.campaign.candidates import Candidates
from workflow.campaign.config import Campaign
from workflow.campaign.costs import predict_batch
from workflow.campaign.evaluator import Evaluator
from workflow.campaign.store import JobKind, JobState, Store
from workflow.common.errors import ConfigError
from workflow.job.optics import abbe_number, lorentz_lorenz

log = logging.getLogger(__name__)

KIND_OF = {QM: JobKind.QM, MD: JobKind.MD, JOB: JobKind.JOB}
COST_SAMPLE = 50  # open polymers whose predicted stage costs are averaged (the median) for a cycle


@dataclass(frozen=True)
class QMFirstPlan:
    """A cycle's jobs: pool ids, their kinds, their scores and predictive moments (maximisation form)."""

    ids: list[str]
    kinds: list[JobKind]
    scores: list[float]
    mean: list[list[float]]
    std: list[list[float]]
    costs: StageCosts
    budget: float
    spent: float


def open_rows(candidates: Candidates, store: Store) -> list[int]:
    """Rows that may still get a screen or an MD job: no whole or MD job, no screen that failed."""
    taken = store.submitted_polymers((JobKind.JOB, JobKind.MD))
    taken |= {r["polymer_id"] for r in store.jobs(JobState.FAILED) if r["kind"] == JobKind.QM}
    return candidates.open_rows(taken)


def fidelities(candidates: Candidates, store: Store, evaluator: Evaluator, objectives: list[str]) -> Fidelities:
    """The pool's QM values (screens, and the QM of every finished job) and MD values (finished jobs)."""
    index = candidates.index
    qm: dict[int, tuple[float, float, float | None, float | None]] = {}
    md: dict[int, dict[str, float]] = {}
    for r in store.results():
        if r["polymer_id"] not in index:
            continue
        record, row = json.loads(r["properties"]), index[r["polymer_id"]]
        s = evaluator.screen(record)
        qm[row] = (s.polarizability_d / s.mol_weight, s.mol_weight, s.polarizability_f, s.polarizability_c)
        md[row] = json.loads(r["objectives"]) | {"density": float(record["density"])}
    for r in store.screens():
        row = index.get(r["polymer_id"])
        if row is not None and row not in qm:
            s = evaluator.screen(json.loads(r["qm"]))
            qm[row] = (s.polarizability_d / s.mol_weight, s.mol_weight, s.polarizability_f, s.polarizability_c)
    qm_rows, md_rows = sorted(qm), sorted(md)
    density = torch.tensor([md[r]["density"] for r in md_rows], dtype=torch.float64)
    md_values = {name: torch.tensor([md[r][name] for r in md_rows], dtype=torch.float64)
                 for name in objectives if name != "density"}
    qm_values = {}
    if "abbe_number" in objectives:  # exact once the QM has run: at the mean density measured so far
        rho_ref = float(density.mean()) if len(md_rows) else 1.1
        qm_values["abbe_number"] = torch.tensor([md[r]["abbe_number"] if r in md else _abbe(qm[r], rho_ref)
                                                 for r in qm_rows], dtype=torch.float64)
    return Fidelities(qm_rows=torch.tensor(qm_rows, dtype=torch.long), s=torch.tensor([qm[r][0] for r in qm_rows],
                      dtype=torch.float64), md_rows=torch.tensor(md_rows, dtype=torch.long), density=density,
                      md_values=md_values, qm_values=qm_values)


def _abbe(qm: tuple[float, float, float | None, float | None], density: float) -> float:
    s_d, weight, alpha_f, alpha_c = qm
    if alpha_f is None or alpha_c is None:
        raise ConfigError("mode qm-first: the Abbe number needs the polarizability at three wavelengths, and this "
                          "evaluator gives one (an oracle table): drop abbe_number from the objectives")
    n_f, n_d, n_c = (lorentz_lorenz(a, density, weight) for a in (alpha_f, s_d * weight, alpha_c))
    return abbe_number(n_d, n_f, n_c)


def stage_costs(campaign: Campaign, runs_dir, candidates: Candidates, rows: list[int], rng) -> StageCosts:
    """Core-seconds of a screen (QM and the MD charges it computes) and of an MD job: predicted from the measured
    stage times (the median over up to :data:`COST_SAMPLE` open polymers), or an oracle's declared ones."""
    if campaign.oracle is not None:
        seconds = campaign.oracle.stage_core_seconds
        return StageCosts(qm=seconds.qm, md=seconds.md)
    sample = rng.choice(rows, size=min(COST_SAMPLE, len(rows)), replace=False)
    picks = [(candidates.ids[r], candidates.smiles[candidates.ids[r]]) for r in sample]
    costs = predict_batch(campaign, runs_dir, picks)[1]
    return StageCosts(qm=statistics.median(c.core_seconds["qm"] + c.core_seconds["charges"] for c in costs),
                      md=statistics.median(c.core_seconds["md"] for c in costs))


def plan(campaign: Campaign, runs_dir, candidates: Candidates, store: Store, evaluator: Evaluator,
         rows: list[int], cycle: int) -> QMFirstPlan:
    """The cycle's screens, MD jobs and whole jobs within what ``batch_size`` property jobs cost."""
    objectives = campaign.targets
    rng = np.random.default_rng([campaign.seed, cycle])
    costs = stage_costs(campaign, runs_dir, candidates, rows, rng)
    data = fidelities(candidates, store, evaluator, objectives.names)
    budget = campaign.batch_size * costs.job
    chosen, mean, sd = plan_fidelities(candidates.X, data, objectives, rows, costs, budget, kernel=campaign.kernel,
                                       ref_margin=getattr(campaign.strategy, "ref_margin", 0.1))
    at = {r: i for i, r in enumerate(rows)}
    return QMFirstPlan([candidates.ids[r] for r in chosen.rows], [KIND_OF[s] for s in chosen.stages], chosen.scores,
                       [mean[at[r]].tolist() for r in chosen.rows], [sd[at[r]].tolist() for r in chosen.rows],
                       costs, budget, chosen.cost)
