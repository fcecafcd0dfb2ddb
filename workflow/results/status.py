"""``workflow status`` and ``workflow pareto``: what a campaign's store says, as text for the terminal."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

from workflow.campaign.store import JobState, Store
from workflow.common.errors import shorten
from workflow.common.files import output_file
from workflow.common.tables import print_table
from workflow.results.report import (
    COMMERCIAL_OPTICAL_POLYMERS,
    OPTICAL_OBJECTIVES,
    beyond_boundary,
    campaign_objectives,
    hypervolume_per_cycle,
    plot_hypervolume,
    fidelity_counts,
    plot_pareto,
    qm_only,
    read_boundary,
    results_frame,
    with_sem,
)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_spent(store: Store, campaign) -> None:
    """Core-hours spent per cycle and stage, and the cost model's out-of-sample error on this campaign's jobs."""

    from workflow.campaign.costs import fit, spent_core_seconds

    spent = spent_core_seconds(store)
    if not spent:
        return
    stages = sorted({st for _, st in spent})
    total = sum(spent.values())
    budget = f" of a {campaign.budget.core_hours:g} core-hour budget" if campaign.budget is not None else ""
    print(f"core-hours spent by finished jobs: {total / 3600:.3f}{budget}")
    for c in sorted({c for c, _ in spent}):
        print(f"  cycle {c}: " + ", ".join(f"{st} {spent.get((c, st), 0.0) / 3600:.3f}" for st in stages))
    if campaign.oracle is None:
        records = [json.loads(r["properties"]) for r in
                   store.db.execute("SELECT properties FROM results ORDER BY recorded_at")]
        model = fit(campaign.preset, records)
        if model.errors:
            errors = [abs(e) for e in model.errors]
            print(f"  cost prediction (each job from the jobs before it): median |error| "
                  f"{100 * statistics.median(errors):.0f}% over {len(errors)} job(s)"
                  + (f", {100 * statistics.median(errors[4:]):.0f}% after the first 4" if len(errors) > 4 else ""))


def current_stage(job_dir: Path) -> tuple[str | None, float | None]:
    """The stage a running property job is in (the first without a manifest in ``stages/``; within ``md``, its
    last finished LAMMPS step) and since when (the last manifest's time); ``(None, None)`` before it started
    or for an oracle look-up."""
    from workflow.job.stages import STAGES

    manifests = job_dir / "stages"
    if not manifests.is_dir():
        return None, None
    done = {p.stem: p.stat().st_mtime for p in manifests.glob("*.json")}
    stage = next((st.name for st in STAGES if st.name not in done), None)
    if stage == "md":
        steps = sorted((p.stat().st_mtime, p.stem) for p in (job_dir / "md" / "stages").glob("*.json"))
        if steps:
            return f"md (after {steps[-1][1]})", steps[-1][0]
    return stage, max(done.values()) if done else None


def print_fidelities(store: Store, jobs: list, frame, shown: int = 5) -> None:
    """A qm-first campaign: jobs by kind, and the polymers with a QM screen but no MD yet (:func:`qm_only`)."""
    print(f"fidelities: {fidelity_counts(jobs)}")
    rows, rho, spread = qm_only(store, frame)
    if rows:
        print(f"QM only ({len(rows)}; n_D at the mean measured density {rho:.3f} g/cm^3 +- one sd {spread:.3f}), "
              f"highest first:")
        for q in rows[:shown]:
            print(f"  {shorten(q.polymer_id)}: n_D {q.refractive_index:.4f} +- {q.sd:.4f}")


def print_status(store: Store, name: str) -> None:
    """``workflow status``: cycles, jobs by state, the hypervolume, the best so far, failures, skipped pool rows."""
    jobs = store.jobs()
    cycles = sorted({r["cycle"] for r in store.cycles()})
    campaign = store.campaign()
    print(f"campaign {name}: cycle {cycles[-1] if cycles else '-'} of {campaign.cycles} "
          f"(cycle 0 = initial design{'; qm-first' if campaign.mode == 'qm-first' else ''})"
          if campaign.mode in ("batch", "qm-first") else
          f"campaign {name} (async): {len(jobs)} of "
          f"{campaign.initial_size + campaign.cycles * campaign.batch_size} jobs submitted")
    counts = Counter(j["state"] for j in jobs)
    print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    now = time.time()
    running = [j for j in jobs if j["state"] == JobState.SUBMITTED]
    for j in running:
        retry = f", attempt {j['attempts']}" if j["attempts"] > 1 else ""
        stage, since = current_stage(Path(j["job_dir"]))
        where = f"; in {stage} for {_age(now - since)}" if stage and since else f"; {stage}" if stage else ""
        print(f"  running: {shorten(j['polymer_id'])} (cycle {j['cycle']}, submitted "
              f"{_age(now - j['submitted_at'])} ago{retry}{where})")
    per_cycle = Counter((j["cycle"], j["state"]) for j in jobs)
    names = campaign.targets.names
    frame = results_frame(store)
    table = hypervolume_per_cycle(frame, campaign.targets)
    hv_by_cycle = dict(zip(table["cycle"], table["hypervolume"]))
    for c in cycles:
        parts = [f"{s} {per_cycle[(c, s)]}" for s in JobState if per_cycle[(c, s)]]
        hv = f"; hypervolume {hv_by_cycle[c]:.4g}" if c in hv_by_cycle else ""
        print(f"  cycle {c}: " + ", ".join(parts) + hv)
    if hv_by_cycle:
        print("  (hypervolume of everything evaluated up to that cycle, reference point: worst observed minus "
              "10% of the range, in maximisation form)")
        front = frame[frame["on_front"]].sort_values(names[0], ascending=False)
        print(f"best so far ({len(front)} non-dominated; `workflow pareto {name}` lists them):")
        for r in front.head(5).itertuples():
            values = ", ".join(f"{n} {getattr(r, n):.4g}" for n in names)
            print(f"  {shorten(r.polymer_id)}: {values} (cycle {r.cycle})")
    if campaign.mode == "qm-first":
        print_fidelities(store, jobs, frame)
    print_spent(store, campaign)
    failed = [j for j in jobs if j["state"] == JobState.FAILED]
    if failed:
        print("failures (excluded from selection):")
        for j in failed:
            print(f"  {shorten(j['polymer_id'])} (cycle {j['cycle']}, {j['attempts']} attempt(s)): "
                  f"{j['failure_kind']} in "
                  f"{j['failure_stage']}: {shorten(j['failure_message'], 300)}")
    returned = [j for j in jobs if j["state"] == JobState.RETURNED]
    if returned:
        print(f"given back to the pool (history; they may run again): {len(returned)}")
        for j in returned[-10:]:
            print(f"  {shorten(j['polymer_id'])} (cycle {j['cycle']}): {j['failure_kind']}: "
                  f"{shorten(j['failure_message'], 200)}")
    problems = store.pool_problems()
    if problems:
        print(f"pool entries skipped: {len(problems)}")
        for p in problems:
            print(f"  row {p['row']} (id {shorten(p['polymer_id'])}, {p['stage']}): {shorten(p['problem'], 200)}")


def print_pareto(store: Store, name: str, plot: str | None = None, boundary_file: str | None = None,
                 hypervolume: bool = False) -> None:
    """``workflow pareto``: the non-dominated polymers (or, with ``hypervolume``, the hypervolume per cycle), the
    polymers beyond the trade-off boundary for n_D vs Abbe number, and a plot to ``plot``."""
    objectives = campaign_objectives(store)
    names = list(objectives)
    frame = results_frame(store)
    if frame.empty:
        print(f"campaign {name}: no finished polymers yet")
        return
    if plot and Path(plot).suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"plot file {plot}: use a .png or .svg name")
    if plot:  # checked, and its folder made, before anything is printed
        plot = str(output_file(plot, "plot file", "pareto.png"))
    if hypervolume:
        table = hypervolume_per_cycle(frame, objectives)
        print(f"campaign {name}: hypervolume of everything evaluated up to each cycle (reference point "
              f"{', '.join(f'{v:.4g}' for v in table.attrs['reference_point'])} in maximisation form: the worst "
              f"result minus 10% of the range)")
        print_table(["cycle", "evaluated", "front", "hypervolume"],
               [[str(r.cycle), str(r.evaluated), str(r.front), f"{r.hypervolume:.5g}"] for r in table.itertuples()])
        if plot:
            print(f"plot: {plot_hypervolume(table, plot, f'{name}: hypervolume per cycle')}")
        return
    front = frame[frame["on_front"]].sort_values(names[0], ascending=objectives.sign(names[0]) < 0)
    print(f"campaign {name}: {len(front)} non-dominated of {len(frame)} evaluated "
          f"({', '.join(f'{n} {objectives[n]}' for n in names)}; failed polymers are not shown)")
    print_table(["id", *names, "cycle", "psmiles"],
           [[shorten(r.polymer_id), *(with_sem(getattr(r, n), getattr(r, f"{n}_sem")) for n in names), str(r.cycle),
             shorten(r.smiles)] for r in front.itertuples()])
    if front[[f"{n}_sem" for n in names]].notna().any().any():
        print("(± one standard error of the sampling: block averages of the density, propagated to n_D and the "
              "Abbe number)")
    if store.campaign().mode == "qm-first":
        print_fidelities(store, store.jobs(), frame, shown=20)
    optical = set(names) == set(OPTICAL_OBJECTIVES)
    boundary = read_boundary(boundary_file) if boundary_file else COMMERCIAL_OPTICAL_POLYMERS
    if optical:
        beyond = frame[beyond_boundary(frame["refractive_index"], frame["abbe_number"], boundary)]
        source = boundary_file or "commercial optical polymers " + ", ".join(
            f"{p.name} {p.refractive_index}/{p.abbe_number:g}" for p in boundary)
        print(f"beyond the trade-off boundary ({source}): {len(beyond) or 'none'}")
        lo, hi = min(p.abbe_number for p in boundary), max(p.abbe_number for p in boundary)
        for r in beyond.sort_values("refractive_index", ascending=False).itertuples():
            outside = "; boundary extrapolated there" if not lo <= r.abbe_number <= hi else ""
            print(f"  {shorten(r.polymer_id)}: n_D {r.refractive_index:.4f}, Abbe number {r.abbe_number:.2f} "
                  f"(cycle {r.cycle}{outside}) {shorten(r.smiles)}")
    elif boundary_file:
        print(f"(the boundary applies to refractive_index vs abbe_number; this campaign optimises {', '.join(names)})")
    if plot:
        print(f"plot: {plot_pareto(frame, objectives, plot, f'{name}: {len(frame)} evaluated', boundary)}")
