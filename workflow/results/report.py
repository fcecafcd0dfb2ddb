"""Reading a campaign's results: Pareto front, trade-off boundary, hypervolume per cycle, plots, export.

Everything here reads the store (read-only) and works while ``workflow run`` is running.

The refractive index vs Abbe number trade-off: transparent polymers with a high n_D disperse
more (lower Abbe number). :data:`COMMERCIAL_OPTICAL_POLYMERS` gives the empirical boundary drawn
by default, the textbook n_D / Abbe numbers of four commercial optical polymers; a polymer
*beyond* it has a higher n_D than the boundary at its Abbe number (it beats the known trade-off).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from surrogate.objectives import Objectives
from surrogate.pareto import hypervolume, pareto_mask, reference_point
from workflow.campaign.store import JobState, Store
from workflow.common.files import atomic_output, output_file


@dataclass(frozen=True)
class BoundaryPoint:
    name: str
    refractive_index: float
    abbe_number: float


COMMERCIAL_OPTICAL_POLYMERS: tuple[BoundaryPoint, ...] = (
    BoundaryPoint("CYTOP", 1.34, 90.0),
    BoundaryPoint("PMMA", 1.492, 58.0),
    BoundaryPoint("polycarbonate", 1.584, 31.0),
    BoundaryPoint("polystyrene", 1.592, 31.0),
)
OPTICAL_OBJECTIVES = ("refractive_index", "abbe_number")


class ReportError(ValueError):
    """A boundary file or request that cannot be used; one line."""


def read_boundary(path: str | Path) -> tuple[BoundaryPoint, ...]:
    """Boundary points from a CSV with ``refractive_index`` and ``abbe_number`` columns (``name`` optional)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"boundary file {path} does not exist")
    df = pd.read_csv(path)
    missing = [c for c in OPTICAL_OBJECTIVES if c not in df.columns]
    if missing:
        raise ReportError(f"boundary file {path} lacks column(s) {', '.join(missing)}")
    points = []
    for i, row in enumerate(df.itertuples(index=False), start=1):
        n, v = getattr(row, "refractive_index"), getattr(row, "abbe_number")
        if not (np.isfinite(n) and np.isfinite(v) and n > 1 and v > 0):
            raise ReportError(f"boundary file {path}: row {i}: needs n > 1 and Abbe number > 0, got {n}, {v}")
        points.append(BoundaryPoint(str(getattr(row, "name", f"point {i}")), float(n), float(v)))
    if len({p.abbe_number for p in points}) < 2:
        raise ReportError(f"boundary file {path}: needs points at two different Abbe numbers at least")
    return tuple(points)


def boundary_curve(points: tuple[BoundaryPoint, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The boundary's vertices (Abbe numbers ascending, n_D): at equal Abbe numbers the higher n_D counts."""
    best: dict[float, float] = {}
    for p in points:
        best[p.abbe_number] = max(best.get(p.abbe_number, -np.inf), p.refractive_index)
    v = np.array(sorted(best))
    return v, np.array([best[x] for x in v])


def boundary_n(abbe: np.ndarray, points: tuple[BoundaryPoint, ...]) -> np.ndarray:
    """n_D of the boundary at each Abbe number: piecewise linear through the vertices, the end segments extended."""
    v, n = boundary_curve(points)
    abbe = np.asarray(abbe, dtype=float)
    out = np.interp(abbe, v, n)
    lo, hi = abbe < v[0], abbe > v[-1]
    out[lo] = n[0] + (abbe[lo] - v[0]) * (n[1] - n[0]) / (v[1] - v[0])
    out[hi] = n[-1] + (abbe[hi] - v[-1]) * (n[-1] - n[-2]) / (v[-1] - v[-2])
    return out


def beyond_boundary(n: np.ndarray, abbe: np.ndarray, points: tuple[BoundaryPoint, ...]) -> np.ndarray:
    """Mask of polymers with a higher n_D than the boundary at their Abbe number."""
    return np.asarray(n, dtype=float) > boundary_n(abbe, points)


# --- results ----------------------------------------------------------------------------------
def campaign_objectives(store: Store) -> Objectives:
    return store.campaign().targets


def sem_of(record: dict, name: str) -> float:
    """A record's standard error of ``name`` (``<name>_sem``: the sampling's block averages), NaN where it has none."""
    try:
        value = float(record.get(f"{name}_sem"))
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def with_sem(value: float, sem: float, digits: int = 4) -> str:
    """``1.5123 ± 0.0031``, or the value alone where its standard error is unknown."""
    return f"{value:.{digits}f} ± {sem:.{digits}f}" if math.isfinite(sem) else f"{value:.{digits}f}"


def fidelity_counts(jobs: list) -> str:
    """A qm-first campaign's jobs by kind (a returned job is history, left out), as one phrase."""
    from collections import Counter

    kinds = Counter(j["kind"] for j in jobs if j["state"] != JobState.RETURNED)
    return (f"{kinds.get('qm', 0)} QM screen(s), {kinds.get('md', 0)} MD job(s) after a screen, "
            f"{kinds.get('job', 0)} whole job(s)")


@dataclass(frozen=True)
class QMOnly:
    """A polymer with a QM screen and no MD yet, with the n_D its polarizability gives at the campaign's mean measured
    density (``sd``: the n of one standard deviation of the measured densities more)."""

    polymer_id: str
    refractive_index: float
    sd: float


def qm_only(store: Store, frame: pd.DataFrame) -> tuple[list[QMOnly], float, float]:
    """A qm-first campaign's QM-only polymers (highest n_D first), the mean measured density and its spread."""
    from workflow.job.optics import lorentz_lorenz

    measured = set(frame["polymer_id"]) if len(frame) else set()
    densities = [json.loads(r["properties"]).get("density") for r in store.results()]
    densities = [float(d) for d in densities if isinstance(d, (int, float))]
    screens = [r for r in store.screens() if r["polymer_id"] not in measured]
    if not screens or not densities:
        return [], float("nan"), float("nan")
    rho = float(np.mean(densities))
    spread = float(np.std(densities))
    rows = []
    for r in screens:
        n = lorentz_lorenz(r["polarizability_d"], rho, r["mol_weight"])
        rows.append(QMOnly(r["polymer_id"], n, lorentz_lorenz(r["polarizability_d"], rho + spread, r["mol_weight"]) - n))
    return sorted(rows, key=lambda q: -q.refractive_index), rho, spread


def results_frame(store: Store) -> pd.DataFrame:
    """One row per evaluated polymer: id, smiles, cycle, the objectives and their standard errors (``<name>_sem``),
    and whether it is on the front."""
    objectives = campaign_objectives(store)
    rows = store.results()
    frame = pd.DataFrame({
        "polymer_id": [r["polymer_id"] for r in rows],
        "smiles": [r["smiles"] for r in rows],
        "name": [r["name"] for r in rows],
        "cycle": [int(r["cycle"]) for r in rows],
    })
    values = [json.loads(r["objectives"]) for r in rows]
    records = [json.loads(r["properties"]) for r in rows]
    for n in objectives:
        frame[n] = [float(v[n]) for v in values]
        frame[f"{n}_sem"] = [sem_of(rec, n) for rec in records]  # NaN where the record has none (an oracle's)
    frame["on_front"] = pareto_mask(objective_matrix(frame, objectives)).numpy() if rows else []
    return frame


def objective_matrix(frame: pd.DataFrame, objectives: Objectives) -> torch.Tensor:
    """``n x 2`` objectives in maximisation form (campaign order)."""
    Y = torch.tensor(frame[list(objectives)].to_numpy(dtype=float), dtype=torch.float64).reshape(-1, len(objectives))
    return objectives.to_max_form(Y)


def hypervolume_per_cycle(frame: pd.DataFrame, objectives: Objectives) -> pd.DataFrame:
    """Hypervolume of everything evaluated up to each cycle; reference point :func:`reference_point` of all results."""
    if frame.empty:
        return pd.DataFrame(columns=["cycle", "evaluated", "front", "hypervolume"])
    Y = objective_matrix(frame, objectives)
    ref = reference_point(Y)
    out = []
    cycles = frame["cycle"].to_numpy()
    for c in sorted(set(cycles)):
        upto = torch.as_tensor(cycles <= c)
        out.append({"cycle": int(c), "evaluated": int(upto.sum()), "front": int(pareto_mask(Y[upto]).sum()),
                    "hypervolume": hypervolume(Y[upto], ref)})
    table = pd.DataFrame(out)
    table.attrs["reference_point"] = ref.tolist()
    return table


# --- plots ------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(frame: pd.DataFrame, objectives: Objectives, path: str | Path, title: str,
                boundary: tuple[BoundaryPoint, ...] | None = None) -> Path:
    """All evaluated polymers coloured by cycle, the Pareto front, and (for n_D vs Abbe) the boundary."""
    plt = _pyplot()
    names = list(objectives)
    optical = set(names) == set(OPTICAL_OBJECTIVES)
    xname, yname = ("abbe_number", "refractive_index") if optical else (names[1], names[0])
    label = {"abbe_number": "Abbe number  (n_D - 1) / (n_F - n_C)", "refractive_index": "refractive index n_D"}
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.0, 5.0), dpi=100)
    cycles = frame["cycle"].to_numpy()
    last = max(1, int(cycles.max()) if len(cycles) else 1)
    norm = BoundaryNorm(np.arange(-0.5, last + 1.5), plt.get_cmap("viridis").N)  # one colour per cycle
    xerr, yerr = (frame.get(f"{k}_sem") for k in (xname, yname))
    if xerr is not None and yerr is not None and (np.isfinite(xerr).any() or np.isfinite(yerr).any()):
        ax.errorbar(frame[xname], frame[yname], xerr=xerr.fillna(0), yerr=yerr.fillna(0), fmt="none",
                    ecolor="0.6", elinewidth=0.8, zorder=1, label="± standard error (block averages)")
    sc = ax.scatter(frame[xname], frame[yname], c=cycles, cmap="viridis", norm=norm, s=22, alpha=0.85, zorder=2)
    bar = fig.colorbar(sc, ax=ax, label="cycle (0 = initial design)")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    front = frame[frame["on_front"]].sort_values(xname)
    if len(front):
        # the edge of the region the front dominates (both objectives maximised: a descending staircase)
        signs = [objectives.sign(k) for k in (xname, yname)]
        if signs == [1, 1]:
            ax.plot(front[xname], front[yname], color="crimson", lw=1.0, zorder=3, drawstyle="steps-pre")
        else:
            ax.plot(front[xname], front[yname], color="crimson", lw=1.0, zorder=3)
        ax.scatter(front[xname], front[yname], s=60, facecolors="none", edgecolors="crimson", lw=1.5, zorder=4,
                   label=f"Pareto front ({len(front)})")
    if optical and boundary:
        v, n = boundary_curve(boundary)
        xs = np.asarray(frame[xname].tolist() + list(v), dtype=float)
        grid = np.linspace(min(xs.min(), v.min()) - 2, max(xs.max(), v.max()) + 2, 200)
        ax.plot(grid, boundary_n(grid, boundary), "--", color="0.35", lw=1.2, zorder=1,
                label="trade-off boundary")
        for p in boundary:
            ax.plot(p.abbe_number, p.refractive_index, "s", color="0.35", ms=5, zorder=1)
            # points sharing an Abbe number (polystyrene, polycarbonate): the lower one labelled below
            below = any(q.abbe_number == p.abbe_number and q.refractive_index > p.refractive_index
                        for q in boundary)
            ax.annotate(p.name, (p.abbe_number, p.refractive_index), textcoords="offset points",
                        xytext=(5, -10 if below else 4), fontsize=8, color="0.25")
        beyond = frame[beyond_boundary(frame[yname], frame[xname], boundary)]
        if len(beyond):
            ax.scatter(beyond[xname], beyond[yname], marker="*", s=90, color="gold", edgecolors="k", lw=0.5,
                       zorder=5, label=f"beyond the boundary ({len(beyond)})")
    ax.set_xlabel(label.get(xname, f"{xname} ({objectives[xname]})"))
    ax.set_ylabel(label.get(yname, f"{yname} ({objectives[yname]})"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hypervolume(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=100)
    ax.plot(table["cycle"], table["hypervolume"], "o-", color="navy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cycle (0 = initial design)")
    ax.set_ylabel("dominated hypervolume")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# --- export -----------------------------------------------------------------------------------
EXPORT_FORMATS = ("parquet", "csv")


def export_frame(store: Store) -> pd.DataFrame:
    """Every job of the campaign with its result (or failure) and provenance: one row per job, so a polymer given
    back to the pool (``returned``) and run again has its earlier attempt's row too."""
    campaign = store.campaign()
    objectives = campaign.targets.names
    pool = {r["polymer_id"]: r for r in store.db.execute("SELECT * FROM pool")}
    results = {r["job_id"]: r for r in store.db.execute("SELECT * FROM results")}
    strategy = {(r["cycle"], r["polymer_id"]): r["strategy"] for r in store.cycles()}
    evaluator = (f"oracle:{Path(campaign.oracle.table).name}" if campaign.oracle is not None
                 else f"property job, preset {campaign.preset.name}")
    screens = {r["job_id"]: r for r in store.screens()}
    rows = []
    for j in store.jobs():
        if j["state"] == JobState.SUBMITTED:
            continue
        p = pool.get(j["polymer_id"])
        res = results.get(j["job_id"])
        kind = j["kind"] if "kind" in j.keys() else "job"
        row = {"campaign": campaign.name, "polymer_id": j["polymer_id"],
               "smiles": p["smiles"] if p else None, "canonical": p["canonical"] if p else None,
               "name": p["name"] if p else None, "status": j["state"], "cycle": j["cycle"],
               "strategy": strategy.get((j["cycle"], j["polymer_id"])), "evaluator": evaluator,
               "attempts": j["attempts"], "job_dir": j["job_dir"], "submitted_at": j["submitted_at"],
               "ended_at": j["ended_at"], "failure_kind": j["failure_kind"] if j["state"] != JobState.DONE else None,
               "failure_stage": j["failure_stage"], "failure_message": j["failure_message"],
               "job_kind": kind, "fidelity": "qm" if kind == "qm" else "qm+md"}  # what the row's values come from
        screen = screens.get(j["job_id"])
        if screen is not None:  # a QM screen: its QM values, no MD yet
            row.update({k: v for k, v in json.loads(screen["qm"]).items() if k not in row
                        and (isinstance(v, (int, float, str, bool)) or v is None)})
        if res is not None:
            obj = json.loads(res["objectives"])
            row.update({n: obj.get(n) for n in objectives})
            props = json.loads(res["properties"])
            if campaign.calibration is not None:  # the objectives above are calibrated; the job's own values beside them
                row.update({f"{n}_raw": props.get(n) for n in objectives})
            for k, v in props.items():
                if k in row:
                    continue
                row[k] = v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)
            row.update({"preset": res["preset"], "protocol": res["protocol"], "versions": res["versions"],
                        "recorded_at": res["recorded_at"]})
        rows.append(row)
    return pd.DataFrame(rows)


def write_export(frame: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    path = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise ReportError(f"export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    path = output_file(path, "export --out", f"export.{fmt}")
    with atomic_output(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path
