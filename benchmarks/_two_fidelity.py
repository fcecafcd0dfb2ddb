"""PI1070 as a two-fidelity oracle, and the two loops replayed on it side by side (``pi1070_replay.py --qm-first``,
``refractive_surrogate.py``).

The QM result of a polymer is PI1070's ``qm_polarizability_monomer`` (alpha, A^3) with its ``mol_weight_monomer``:
the specific polarizability s = alpha / M. Its MD result is the rest of its row (``density``, ``refractive_index``,
``Cp``, ``bulk_modulus``). PI1070's refractive index is Lorentz-Lorenz of exactly these (RadonPy's own definition:
checked to 2e-4 over the table by :func:`load`).

Costs: the measured stage times of ``quick`` on 2 cores (benchmarks/RESULTS.md): the QM stage of the 8 reference
polymers 1,510 s in all (189 s each on average), the MD stage of PMMA, PS and PC (ESP charges 24.6 / 7.3 / 195.6 s,
cell and packing, 21-step, sampling: 1,920 / 1,721 / 1,491 s; 1,711 s on average). So a QM screen costs 0.105
core-hours and an MD job 0.951: 1 to 9.05.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks._pi1070 import ID_COLUMN, REPO, load_table, write_pool

QUICK_COSTS_CORE_H = {"qm": 2 * 189.0 / 3600, "md": 2 * 1711.0 / 3600}
RUNS = REPO / "runs" / "benchmarks" / "pi1070"


@dataclass(frozen=True)
class TwoFidelityTable:
    """PI1070 rows with a descriptor and every value used: ``X`` (``n x d``), ``s`` (``n``), MD columns (``n`` each)."""

    ids: list[str]
    X: torch.Tensor
    s: torch.Tensor
    md: dict[str, torch.Tensor]


def load(data: Path, columns: tuple[str, ...] = ("density", "refractive_index", "Cp", "bulk_modulus"),
         runs: Path = RUNS, quiet: bool = False) -> TwoFidelityTable:
    """The table's polymers with a descriptor and every column finite (descriptors cached under ``runs``)."""
    from surrogate.descriptor import featurize
    from surrogate.physics import LL_K, index_of_phi
    from workflow.campaign.pool import load_pool

    table = load_table(data)
    pool = load_pool(write_pool(table, runs / "pool.csv"))
    t0 = time.perf_counter()
    feats = featurize(pool.entries["canonical"].tolist(), cache_path=runs / "descriptor_cache.sqlite")
    say = (lambda *a: None) if quiet else print
    say(f"descriptors: {len(table)} polymers, {feats.computed} computed, {feats.cached} cached, "
          f"{len(feats.failures)} failed, {time.perf_counter() - t0:.1f} s")
    by_id = table.set_index(ID_COLUMN)
    ids, rows = [], []
    for i, pid in enumerate(pool.entries["id"]):
        row = by_id.loc[pid]
        values = [row["qm_polarizability_monomer"], row["mol_weight_monomer"], *(row[c] for c in columns)]
        if i not in feats.failures and all(math.isfinite(float(v)) for v in values):
            ids.append(pid)
            rows.append(i)
    sub = by_id.loc[ids]
    s = torch.tensor((sub["qm_polarizability_monomer"] / sub["mol_weight_monomer"]).to_numpy(), dtype=torch.float64)
    md = {c: torch.tensor(sub[c].to_numpy(dtype=float), dtype=torch.float64) for c in columns}
    if "refractive_index" in md and "density" in md:
        gap = (index_of_phi(LL_K * md["density"] * s) - md["refractive_index"]).abs().max()
        say(f"Lorentz-Lorenz of PI1070's alpha, M and density against its refractive_index: max |diff| {gap:.1e}")
    return TwoFidelityTable(ids, torch.as_tensor(feats.X[np.array(rows)], dtype=torch.float64), s, md)


def max_form(table: TwoFidelityTable, objectives: dict[str, str], rows) -> torch.Tensor:
    """``k x m`` values of ``rows`` in maximisation form."""
    sign = torch.tensor([1.0 if d == "maximize" else -1.0 for d in objectives.values()], dtype=torch.float64)
    return torch.stack([table.md[name][rows] for name in objectives], dim=1) * sign


def initial_design(n: int, size: int, seed: int) -> list[int]:
    """The same random initial design for both loops (one-fidelity property jobs)."""
    return np.random.default_rng([seed, 0]).choice(n, size=size, replace=False).tolist()


@dataclass
class ReplayRun:
    """One replayed campaign: after each cycle, the core-hours spent and the rows with MD (each a front candidate)."""

    strategy: str
    seed: int
    spent: list[float]
    md_rows: list[list[int]]
    qm_screens: list[int]
    seconds: float


def one_fidelity(table: TwoFidelityTable, objectives: dict[str, str], seed: int, cycles: int, initial: int,
                 batch: int, costs, strategy_name: str = "qlognehvi-greedy") -> ReplayRun:
    """The classic loop: every pick is a whole property job (QM and MD), chosen by a campaign strategy (the default
    ``qlognehvi-greedy``, its settings as a campaign has them) on direct GPs."""
    from surrogate.strategies import SelectionProblem, make_strategy

    t0 = time.perf_counter()
    strategy, n = make_strategy(strategy_name), len(table.ids)
    done = initial_design(n, initial, seed)
    spent, history = [initial * costs.job], [list(done)]
    for cycle in range(1, cycles + 1):
        taken = set(done)
        open_rows = np.array([r for r in range(n) if r not in taken])
        problem = SelectionProblem(batch, table.X, open_rows, table.X[done], max_form(table, objectives, done),
                                   np.random.default_rng([seed, cycle]))
        with torch.random.fork_rng():
            torch.manual_seed(seed * 1000 + cycle)
            picks = [int(open_rows[i]) for i in strategy.select(problem).indices]
        done += picks
        spent.append(spent[-1] + len(picks) * costs.job)
        history.append(list(done))
    return ReplayRun(f"one-fidelity ({strategy_name})", seed, spent, history, [0] * len(spent),
                     time.perf_counter() - t0)


def qm_first(table: TwoFidelityTable, objectives: dict[str, str], seed: int, cycles: int, initial: int,
             batch: int, costs) -> ReplayRun:
    """QM screens, MD jobs and whole jobs chosen by EHVI per cost (:func:`surrogate.multifidelity.plan_cycle`) on the
    physics-informed model, each cycle spending what one batch of the classic loop costs; the same initial design."""
    from surrogate.multifidelity import JOB, MD, QM, plan_fidelities
    from surrogate.objectives import Objectives
    from surrogate.physics import Fidelities

    t0 = time.perf_counter()
    n, targets = len(table.ids), Objectives.of(objectives)
    md = initial_design(n, initial, seed)
    qm = list(md)
    spent, history, screens = [initial * costs.job], [list(md)], [0]
    for cycle in range(1, cycles + 1):
        data = Fidelities(qm_rows=torch.tensor(qm), s=table.s[qm], md_rows=torch.tensor(md),
                          density=table.md["density"][md], md_values={k: v[md] for k, v in table.md.items()})
        taken = set(md)
        with torch.random.fork_rng():  # the campaign's plan, as qm_first.plan makes it
            torch.manual_seed(seed * 1000 + cycle)
            plan, _, _ = plan_fidelities(table.X, data, targets, [r for r in range(n) if r not in taken], costs,
                                         budget=batch * costs.job)
        qm += plan.of(QM) + plan.of(JOB)
        md += plan.of(MD) + plan.of(JOB)
        spent.append(spent[-1] + plan.cost)
        history.append(list(md))
        screens.append(len(qm) - len(md))
    return ReplayRun("qm-first", seed, spent, history, screens, time.perf_counter() - t0)


PAIRS: tuple[dict[str, str], ...] = (
    {"refractive_index": "maximize", "Cp": "maximize"},
    {"refractive_index": "maximize", "bulk_modulus": "maximize"},
    {"refractive_index": "maximize", "density": "minimize"},  # the lens maker's: high n at low specific gravity
)
LOOPS = {"one-fidelity": one_fidelity, "qm-first": qm_first,
         # the qm-first plan ranks MD picks by analytic EHVI, as ehvi-topk does: the same rule on one fidelity
         "one-fidelity ehvi-topk": lambda *a: one_fidelity(*a, strategy_name="ehvi-topk")}


def scaled_front(table: TwoFidelityTable, objectives: dict[str, str]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Every row's objectives min-max scaled to [0, 1] (1 best), the mask of the true front, its hypervolume."""
    from surrogate.pareto import hypervolume, pareto_mask

    Y = max_form(table, objectives, torch.arange(len(table.ids)))
    S = (Y - Y.min(dim=0).values) / (Y.max(dim=0).values - Y.min(dim=0).values)
    front = pareto_mask(S)
    return S, front, hypervolume(S[front], torch.zeros(S.shape[1], dtype=S.dtype))


def curve(run: ReplayRun, S: torch.Tensor, front: torch.Tensor, hv_true: float) -> tuple[list[float], list[float]]:
    """Hypervolume fraction and front share found after each cycle of ``run``."""
    from surrogate.pareto import hypervolume

    ref = torch.zeros(S.shape[1], dtype=S.dtype)
    hv = [hypervolume(S[rows], ref) / hv_true for rows in run.md_rows]
    found = [float(front[rows].sum()) / float(front.sum()) for rows in run.md_rows]
    return hv, found


def at_cpu(run: ReplayRun, values: list[float], cpu: float) -> float:
    """The figure after the last cycle whose cumulative spend is within ``cpu``."""
    within = [v for v, c in zip(values, run.spent) if c <= cpu + 1e-9]
    return within[-1] if within else 0.0


def cpu_to(run: ReplayRun, hv: list[float], level: float = 0.99) -> float | None:
    return next((c for c, h in zip(run.spent, hv) if h >= level), None)


if __name__ == "__main__":  # fill the descriptor cache
    from benchmarks._pi1070 import DEFAULT_DATA

    t = load(DEFAULT_DATA)
    print(f"{len(t.ids)} polymers usable")
