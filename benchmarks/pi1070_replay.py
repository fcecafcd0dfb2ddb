"""Retrospective active learning on PI1070: each strategy replayed over several seeds.

    python benchmarks/pi1070_replay.py [--data PATH] [--seeds 10] [--strategies a,b,...]

The published setting: objectives ``refractive_index`` and ``Cp`` (both maximised), 10 initial
polymers, 10 per cycle, 20 cycles. Every run is a real PolyScout campaign (``CampaignRunner``
with the oracle evaluator: a polymer's "simulation" is a look-up of its PI1070 row), stored under
``runs/benchmarks/pi1070/``. The same seed gives every strategy the same initial design.

Figures, against the table's true Pareto front (non-dominated rows of the whole table):
``front_found_after_N``: fraction of the front's polymers evaluated after cycle N;
``hv_fraction_after_20``: hypervolume of the evaluated polymers over the front's, objectives
min-max scaled over the table, reference point at the worst corner (0, 0);
``cycles_to_99_hv``: first cycle reaching 99% of that hypervolume (median over seeds; ``null``
when most seeds do not reach it within the cycles run).

``--qm-first`` replays the two-fidelity loop (issue 37) against the one-fidelity default in the same run, on three
pairs (n with Cp, n with bulk modulus, n max with density min), with each stage's measured ``quick`` cost
(:mod:`benchmarks._two_fidelity`): core-hours to reach 99% of the front's hypervolume, and the front found at equal
core-hours.

``--objectives a:max,b:min`` replays another pair; ``--results FILE`` appends each finished campaign to a JSON-lines
file and skips those already there, so a long replay can be split over sittings or machines.

``published-code`` is SPACIER's own selection code, unchanged (``../shared/baselines/spacier``).
``published-replica`` is the published method rebuilt beside ours for a side-by-side baseline:
one scikit-learn GP per objective (constant x isotropic RBF + white noise, hyper-parameters by
marginal likelihood), objectives z-scored on the training set, analytic EHVI (BoTorch's algebra)
with reference point (-5, -5) in z units, top 10. Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._pi1070 import ID_COLUMN, REPO, data_argument, load_table, write_pool  # noqa: E402

OBJECTIVES = {"refractive_index": "maximize", "Cp": "maximize"}  # the published setting


def parse_objectives(text: str) -> dict[str, str]:
    """``refractive_index,Cp`` or ``density:min,Cp:max`` -> {column: maximize | minimize} (two objectives)."""
    out = {}
    for item in text.split(","):
        name, _, sense = item.strip().partition(":")
        out[name] = {"": "maximize", "max": "maximize", "min": "minimize"}[sense]
    if len(out) != 2:
        raise SystemExit(f"--objectives needs two columns, got {text!r}")
    return out
PUBLISHED = {"ehvi (reported)": {"front_found_after_10": 0.54, "front_found_after_20": 0.90, "cycles_to_99_hv": 18},
             "random (reported)": {"front_found_after_10": 0.09, "front_found_after_20": 0.17}}


def published_replica():
    """The published SPACIER selection (see the module docstring), as a PolyScout strategy."""
    from surrogate.strategies import Strategy

    class PublishedReplica(Strategy):
        name: str = "published-replica"
        needs_model: ClassVar[bool] = False  # it fits its own scikit-learn GPs

        def _select(self, problem, model):
            return _published_selection(problem)

    return PublishedReplica()


def _published_selection(problem):
    import torch
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    from surrogate.acquisition import Selection, ehvi

    Y = problem.Y_train.numpy()
    mu, sd = Y.mean(axis=0), Y.std(axis=0)
    Z = (Y - mu) / np.where(sd > 0, sd, 1.0)
    Xc = problem.X[problem.rows].numpy()
    means, stds = [], []
    for j in range(Z.shape[1]):
        kernel = ConstantKernel(1.0) * RBF(1.0) + WhiteKernel(1e-2)
        gp = GaussianProcessRegressor(kernel=kernel, random_state=0).fit(problem.X_train.numpy(), Z[:, j])
        m, s = gp.predict(Xc, return_std=True)
        means.append(m)
        stds.append(s)
    mean = torch.as_tensor(np.stack(means, 1))
    std = torch.as_tensor(np.stack(stds, 1)).clamp_min(1e-9)
    scores = ehvi(mean, std, torch.as_tensor(Z), torch.tensor([-5.0, -5.0], dtype=mean.dtype))
    order = torch.argsort(scores, descending=True)[:problem.q].tolist()
    return Selection(order, [float(scores[i]) for i in order], mean[order].tolist(), std[order].tolist(),
                     "published-replica")


BASELINES = REPO.parent / "shared" / "baselines"


def published_code():
    """SPACIER's own selection code (``../shared/baselines/spacier``: ``spacier.BO`` with ``sklearn_GP``,
    standardised outputs, ``EHVI(q)``), unchanged, as a PolyScout strategy. It prints and silences warnings
    process-wide, so it only runs inside a replay's own campaign process (``run_campaign``)."""
    from surrogate.strategies import Strategy

    class PublishedCode(Strategy):
        name: str = "published-code"
        needs_model: ClassVar[bool] = False

        def _select(self, problem, model):
            return _published_code_selection(problem)

    return PublishedCode()


def _published_code_selection(problem):
    import contextlib
    import io

    import pandas as pd

    from surrogate.acquisition import Selection

    if str(BASELINES) not in sys.path:
        sys.path.insert(0, str(BASELINES))
    from spacier import spacier

    Y = problem.Y_train.numpy()  # maximisation form, as the published code maximises
    df = pd.DataFrame(Y, columns=[f"y{j}" for j in range(Y.shape[1])])
    Xc = problem.X[problem.rows].numpy()
    with contextlib.redirect_stdout(io.StringIO()):
        bo = spacier.BO(problem.X_train.numpy(), df, Xc, "sklearn_GP", list(df.columns), standardization=True)
        picks = [int(i) for i in bo.EHVI(problem.q)]
    return Selection(picks, [None] * len(picks), bo.mu[picks].tolist(), bo.sigma[picks].tolist(), "published-code")


BASELINE_STRATEGIES = {"published-replica": published_replica, "published-code": published_code}


def parse_strategy(spec: str) -> tuple[str, str, dict[str, float]]:
    """``NAME[:KERNEL][+setting=value...]`` -> (name, kernel or "", settings), e.g.
    ``ehvi-believer:isotropic+ref_margin=1.0`` (values are numbers, or true / false)."""
    head, *pairs = spec.split("+")
    name, _, kernel = head.partition(":")
    settings = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise SystemExit(f"strategy {spec!r}: expected +setting=value, got +{pair}")
        settings[key] = {"true": True, "false": False}.get(value.lower(), None)
        if settings[key] is None:
            settings[key] = float(value)
    return name, kernel, settings


def run_campaign(job: tuple[str, int, dict]) -> dict:
    """One campaign in its own process; returns the evaluated polymer ids per cycle."""
    strategy, seed, opts = job
    import torch

    torch.set_num_threads(opts["threads"])
    from workflow.campaign.config import Campaign, OracleSettings
    from workflow.campaign.engine import CampaignRunner, store_path
    from workflow.dispatch.evaluators import OracleEvaluator

    runs = Path(opts["runs"])
    objectives = opts["objectives"]
    pair = "" if objectives == OBJECTIVES else "-" + "-".join(objectives)
    name = f"pi1070{pair}-{strategy.replace(':', '-').replace('+', '-').replace('=', '')}-s{seed}"
    if not opts["keep"]:
        shutil.rmtree(runs / name, ignore_errors=True)
    base, kernel, settings = parse_strategy(strategy)
    campaign = Campaign(name=name, pool=Path(opts["pool"]), objectives=objectives,
                        initial_size=opts["initial"], batch_size=opts["batch"], cycles=opts["cycles"],
                        strategy="ehvi-topk" if base in BASELINE_STRATEGIES else {"name": base, **settings},
                        **({"kernel": kernel} if kernel else {}),  # else the campaign default (isotropic)
                        seed=seed, oracle=OracleSettings(table=Path(opts["data"]), id_column=ID_COLUMN))
    replica = BASELINE_STRATEGIES[base]() if base in BASELINE_STRATEGIES else None
    t0 = time.perf_counter()
    runner = CampaignRunner(campaign, runs, strategy=replica)
    runner.run(OracleEvaluator(campaign.oracle))
    seconds = time.perf_counter() - t0
    db = sqlite3.connect(store_path(runs, name))
    done = db.execute("SELECT cycle, polymer_id FROM jobs WHERE state = 'done'").fetchall()
    db.close()
    return {"strategy": strategy, "seed": seed, "done": done, "seconds": seconds}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_argument(parser)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--objectives", type=parse_objectives, default=OBJECTIVES,
                        help="two PI1070 columns, each :max (default) or :min; default refractive_index,Cp")
    parser.add_argument("--strategies", default="qlognehvi-greedy,ehvi-believer,ehvi-topk,random,published-code",
                        help="comma-separated STRATEGY[:KERNEL][+setting=value...], e.g. ehvi-believer:ard or "
                             "ehvi-topk+ref_margin=1.0; the kernel defaults to the campaign default (isotropic)")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--initial", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--processes", type=int, default=os.cpu_count(), help="campaigns run side by side")
    parser.add_argument("--threads", type=int, help="torch threads per campaign (default: cores / processes)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "benchmarks" / "pi1070")
    parser.add_argument("--keep", action="store_true", help="resume earlier runs instead of starting afresh")
    parser.add_argument("--qm-first", action="store_true", help="the two-fidelity replay with costs (see above)")
    parser.add_argument("--loops", default="one-fidelity,qm-first,one-fidelity ehvi-topk",
                        help="with --qm-first: the loops replayed side by side")
    parser.add_argument("--results", type=Path, help="JSON lines: each finished campaign is appended as it ends; "
                        "campaigns already there are not run again (a long replay can stop and go on)")
    return parser.parse_args()


def true_front(table, objectives: dict[str, str]) -> tuple[dict, set, float]:
    """Objectives scaled to [0, 1] per polymer id (1 best), the ids on the table's front, and its hypervolume."""
    import torch

    from surrogate.pareto import hypervolume, pareto_mask

    sign = np.array([1.0 if d == "maximize" else -1.0 for d in objectives.values()])
    Y = table[list(objectives)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float) * sign
    ok = np.isfinite(Y).all(axis=1)
    lo, hi = Y[ok].min(axis=0), Y[ok].max(axis=0)
    scaled = {pid: (y - lo) / (hi - lo) for pid, y, k in zip(table[ID_COLUMN], Y, ok) if k}
    ids = list(scaled)
    S = torch.tensor(np.array([scaled[i] for i in ids]))
    front = {ids[i] for i in torch.nonzero(pareto_mask(S))[:, 0].tolist()}
    return scaled, front, hypervolume(S, torch.zeros(2, dtype=S.dtype))


def front_shares(scaled: dict, front: set, hv_true: float) -> dict[str, float]:
    """Each front member's exclusive share of the front's hypervolume (what the front loses without it)."""
    import torch

    from surrogate.pareto import hypervolume

    ids = sorted(front)
    S = torch.tensor(np.array([scaled[i] for i in ids]))
    return {pid: 1.0 - hypervolume(torch.cat([S[:k], S[k + 1:]]), torch.zeros(2, dtype=S.dtype)) / hv_true
            for k, pid in enumerate(ids)}


def summarise(strategy: str, runs: list[dict], scaled: dict, front: set, hv_true: float, C: int) -> dict:
    """Hypervolume fraction and front found per cycle over the seeds of one strategy; its figures."""
    import torch

    from surrogate.pareto import hypervolume

    ref = torch.zeros(2, dtype=torch.float64)
    curves, found, reach, secs, missed = [], [], [], [], collections.Counter()
    for r in (r for r in runs if r["strategy"] == strategy):
        missed.update(front.difference(pid for cyc, pid in r["done"] if cyc <= C))
        hv, fr = [], []
        for c in range(C + 1):
            got = [pid for cyc, pid in r["done"] if cyc <= c and pid in scaled]
            P = torch.tensor(np.array([scaled[p] for p in got])).reshape(-1, 2)
            hv.append(hypervolume(P, ref) / hv_true)
            fr.append(len(front.intersection(got)) / len(front))
        curves.append(hv)
        found.append(fr)
        reach.append(next((c for c in range(C + 1) if hv[c] >= 0.99), None))
        secs.append(r["seconds"])
    hv_arr, fr_arr = np.array(curves), np.array(found)
    print(f"\n{strategy}: hypervolume fraction per cycle (mean ± sd over {len(curves)} seeds), front found")
    for c in range(C + 1):
        print(f"  cycle {c:>2}: hv {hv_arr[:, c].mean():.3f} ± {hv_arr[:, c].std():.3f}   "
              f"front {fr_arr[:, c].mean():.2f} ± {fr_arr[:, c].std():.2f}")
    med = statistics.median(sorted(C + 1 if x is None else x for x in reach))
    print(f"  median cycles to 99% hv: {'>' + str(C) if med > C else med}; mean campaign time "
          f"{statistics.mean(secs):.0f} s")
    print(f"  front polymers missed after {C} cycles (seeds): "
          + (", ".join(f"{pid} ({n})" for pid, n in missed.most_common()) or "none"))
    return {"front_found_after_10": round(float(fr_arr[:, min(10, C)].mean()), 3),
            "front_found_after_20": round(float(fr_arr[:, min(20, C)].mean()), 3),
            "hv_fraction_after_20": round(float(hv_arr[:, min(20, C)].mean()), 4),
            "hv_fraction_after_20_sd": round(float(hv_arr[:, min(20, C)].std()), 4),
            "cycles_to_99_hv": None if med > C else med,
            "seeds_reaching_99_hv": sum(x is not None for x in reach),
            "seconds_per_campaign": round(statistics.mean(secs), 1),
            f"missed_after_{C}": dict(missed.most_common())}


def _two_fidelity_job(job: tuple) -> dict:
    loop, pair_index, seed, opts = job
    import torch

    torch.set_num_threads(opts["threads"])
    from benchmarks._two_fidelity import LOOPS, PAIRS, QUICK_COSTS_CORE_H, load
    from surrogate.multifidelity import StageCosts

    table = load(Path(opts["data"]), quiet=True)
    run = LOOPS[loop](table, PAIRS[pair_index], seed, opts["cycles"], opts["initial"], opts["batch"],
                      StageCosts(**QUICK_COSTS_CORE_H))
    return {"loop": loop, "pair": pair_index, "seed": seed, "spent": run.spent, "md_rows": run.md_rows,
            "qm_screens": run.qm_screens, "seconds": run.seconds}


def qm_first_replay(args: argparse.Namespace) -> None:
    """Both loops on each pair over the seeds; core-hours to 99% hypervolume and the front at equal core-hours."""
    from benchmarks._two_fidelity import PAIRS, QUICK_COSTS_CORE_H, ReplayRun, at_cpu, cpu_to, curve, load, \
        scaled_front

    table = load(args.data)
    print(f"stage costs (quick, measured, core-hours): {QUICK_COSTS_CORE_H}; a one-fidelity job "
          f"{sum(QUICK_COSTS_CORE_H.values()):.3f}")
    opts = {"data": str(args.data.resolve()), "cycles": args.cycles, "initial": args.initial, "batch": args.batch,
            "threads": args.threads or 1}
    loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    jobs = [(loop, p, seed, opts) for p in range(len(PAIRS)) for seed in range(args.seeds) for loop in loops]
    runs = []
    with mp.get_context("spawn").Pool(max(1, min(args.processes, len(jobs)))) as workers:
        for r in workers.imap_unordered(_two_fidelity_job, jobs):
            runs.append(r)
            print(f"  {'/'.join(PAIRS[r['pair']])} {r['loop']:<12} seed {r['seed']}: {r['spent'][-1]:.0f} core-h, "
                  f"{len(r['md_rows'][-1])} MD, {r['qm_screens'][-1]} QM-only, {r['seconds']:.0f} s", flush=True)
    figures: dict = {"seeds": args.seeds, "cycles": args.cycles, "costs_core_h": QUICK_COSTS_CORE_H}
    for p, pair in enumerate(PAIRS):
        S, front, hv_true = scaled_front(table, pair)
        per = {loop: [] for loop in loops}
        for r in (r for r in runs if r["pair"] == p):
            run = ReplayRun(r["loop"], r["seed"], r["spent"], r["md_rows"], r["qm_screens"], r["seconds"])
            hv, found = curve(run, S, front, hv_true)
            per[r["loop"]].append((run, hv, found))
        reach = {loop: [cpu_to(run, hv) for run, hv, _ in per[loop]] for loop in loops}
        base = [c for c in reach.get("one-fidelity", []) if c is not None]
        base_cpu = statistics.median(base) if base else max(run.spent[-1] for v in per.values() for run, _, _ in v)
        name = " x ".join(f"{k} ({'max' if d == 'maximize' else 'min'})" for k, d in pair.items())
        print(f"\n{name}: true front {int(front.sum())} polymers")
        out = {}
        for loop in loops:
            got = [c for c in reach[loop] if c is not None]
            med = statistics.median(got) if len(got) * 2 > len(reach[loop]) else None
            third = [at_cpu(run, hv, base_cpu / 3) for run, hv, _ in per[loop]]
            third_front = [at_cpu(run, fr, base_cpu / 3) for run, _, fr in per[loop]]
            final = [(hv[-1], fr[-1], run.spent[-1], len(run.md_rows[-1]), run.qm_screens[-1])
                     for run, hv, fr in per[loop]]
            out[loop] = {"core_h_to_99_hv_median": None if med is None else round(med, 1),
                         "seeds_reaching_99_hv": len(got),
                         "hv_at_third_of_baseline_core_h": round(float(np.mean(third)), 4),
                         "front_at_third_of_baseline_core_h": round(float(np.mean(third_front)), 3),
                         "hv_final": round(float(np.mean([f[0] for f in final])), 4),
                         "front_final": round(float(np.mean([f[1] for f in final])), 3),
                         "core_h_final": round(float(np.mean([f[2] for f in final])), 1),
                         "md_jobs_final": round(float(np.mean([f[3] for f in final])), 1),
                         "qm_only_final": round(float(np.mean([f[4] for f in final])), 1)}
            o = out[loop]
            print(f"  {loop:<22} 99% hv after {o['core_h_to_99_hv_median']} core-h (median; {len(got)} of "
                  f"{len(reach[loop])} seeds reach it); at {base_cpu / 3:.0f} core-h (a third of the one-fidelity "
                  f"median): hv {o['hv_at_third_of_baseline_core_h']:.4f}, front {o['front_at_third_of_baseline_core_h']:.3f}; "
                  f"after {o['core_h_final']:.0f} core-h: hv {o['hv_final']:.4f}, front {o['front_final']:.3f} "
                  f"({o['md_jobs_final']:.0f} MD jobs, {o['qm_only_final']:.0f} QM-only screens)")
        q, b = (out.get(k, {}).get("core_h_to_99_hv_median") for k in ("qm-first", "one-fidelity"))
        out["core_h_ratio"] = None if q is None or b is None else round(q / b, 3)
        print(f"  core-hours to 99% hv, qm-first / one-fidelity: {out['core_h_ratio']} (goal <= 0.333)")
        figures[name] = out
    print(json.dumps(figures))


def main() -> None:
    args = parse_args()
    if args.qm_first:
        return qm_first_replay(args)
    from surrogate.descriptor import featurize
    from workflow.campaign.pool import load_pool

    table = load_table(args.data)
    pool = write_pool(table, args.runs / "pool.csv")
    t0 = time.perf_counter()  # descriptors once, into the cache every campaign reads
    feats = featurize(load_pool(pool).entries["canonical"].tolist(), cache_path=args.runs / "descriptor_cache.sqlite")
    print(f"descriptors: {len(table)} polymers, {feats.computed} computed, {feats.cached} cached, "
          f"{len(feats.failures)} failed, {time.perf_counter() - t0:.1f} s")
    scaled, front, hv_true = true_front(table, args.objectives)
    print(f"true front: {len(front)} polymers of {len(scaled)} with both objectives; "
          f"hypervolume {hv_true:.4f} (scaled)")
    shares = front_shares(scaled, front, hv_true)  # a member adding ~nothing is found by luck, not by a model
    print("front members adding least to its hypervolume (share lost without each): "
          + ", ".join(f"{pid} {share:.1e}" for pid, share in sorted(shares.items(), key=lambda x: x[1])[:3]))

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    opts = {"objectives": args.objectives, "runs": str(args.runs), "pool": str(pool), "data": str(args.data.resolve()), "initial": args.initial,
            "batch": args.batch, "cycles": args.cycles, "keep": args.keep,
            "threads": args.threads or max(1, (os.cpu_count() or 1) // max(1, args.processes))}
    runs = []
    if args.results is not None and args.results.is_file():
        wanted = {(s, seed) for seed in range(args.seeds) for s in strategies}
        for line in args.results.read_text().splitlines():
            r = json.loads(line)
            if r.get("objectives") == args.objectives and r.get("cycles") == args.cycles \
                    and (r["strategy"], r["seed"]) in wanted:
                runs.append(r)
        print(f"{len(runs)} campaigns read from {args.results}")
    have = {(r["strategy"], r["seed"]) for r in runs}
    jobs = [(s, seed, opts) for s in strategies for seed in range(args.seeds) if (s, seed) not in have]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(max(1, min(args.processes, len(jobs)))) as workers:
        for r in workers.imap_unordered(run_campaign, jobs):
            runs.append(r)
            print(f"  {r['strategy']:<18} seed {r['seed']:>2}: {len(r['done'])} evaluated, {r['seconds']:.0f} s",
                  flush=True)
            if args.results is not None:
                with args.results.open("a") as out:
                    out.write(json.dumps(r | {"objectives": args.objectives, "cycles": args.cycles}) + "\n")
    print(f"{len(runs)} campaigns in {time.perf_counter() - t0:.0f} s")
    figures: dict = {"seeds": args.seeds, "objectives": args.objectives, "front_size": len(front)}
    for s in (s for s in strategies if any(r["strategy"] == s for r in runs)):
        figures[s] = summarise(s, runs, scaled, front, hv_true, args.cycles)
    print("\nreported for the published method (DEVELOPERS' issue 3, 10 seeds): " + json.dumps(PUBLISHED))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
