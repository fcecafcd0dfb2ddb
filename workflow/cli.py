"""``workflow``: the PolyScout command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from workflow.config import DEMO_CAMPAIGN, ConfigError, load_campaign


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"workflow: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # PoolError, PresetError
        print(f"workflow: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workflow", description="PolyScout: active-learning polymer discovery on HPC.")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run (or continue) a campaign",
                         description=f"Run a campaign. Without CAMPAIGN, the demo campaign shipped in the package "
                                     f"({DEMO_CAMPAIGN}) runs on profile 'local' with the smoke preset.")
    run.add_argument("campaign", nargs="?", default=str(DEMO_CAMPAIGN), help="campaign YAML file (default: demo)")
    run.add_argument("--profile", default="local", help="profile name in hpc_profiles/ or a YAML path (default: local)")
    run.add_argument("--runs", default="runs", help="directory holding campaign outputs (default: ./runs)")
    run.add_argument("--dry-run", action="store_true",
                     help="select the next batch and show what would be submitted, and where; change nothing")
    run.set_defaults(func=cmd_run)

    prof = sub.add_parser("profile", help="site profiles (hpc_profiles/)").add_subparsers(metavar="ACTION")
    pl = prof.add_parser("list", help="the profiles this directory and the package know")
    pl.set_defaults(func=cmd_profile_list)
    ps = prof.add_parser("show", help="a profile's settings, or with --script its batch script")
    ps.add_argument("name", help="profile name or YAML path")
    ps.add_argument("--script", action="store_true", help="print the batch script Parsl submits per block")
    ps.set_defaults(func=cmd_profile_show)

    for name, func, text in (("status", cmd_status, "cycles, jobs by state, failures"),
                             ("pareto", cmd_pareto, "the current non-dominated polymers")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("campaign", nargs="?", default="demo", help="campaign name under --runs, or a campaign YAML")
        sp.add_argument("--runs", default="runs")
        sp.set_defaults(func=func)

    job = sub.add_parser("job", help="one property job").add_subparsers(metavar="ACTION")
    jr = job.add_parser("run", help="run one property job and print its record as JSON")
    jr.add_argument("psmiles")
    jr.add_argument("--preset", default="smoke")
    jr.add_argument("--dir", required=True, help="job directory (reused to resume)")
    jr.add_argument("--cores", type=int, default=1)
    jr.add_argument("--seed", type=int, default=0)
    jr.set_defaults(func=cmd_job_run)

    pool = sub.add_parser("pool", help="pool tools").add_subparsers(metavar="ACTION")
    pf = pool.add_parser("featurize", help="write the 170-d descriptors of a pool (Parquet)")
    pf.add_argument("pool")
    pf.add_argument("--out", required=True)
    pf.add_argument("--cache", default="runs/descriptor_cache.sqlite")
    pf.add_argument("--workers", type=int, default=None)
    pf.add_argument("--timeout", type=float, default=120.0, help="per-polymer time limit, seconds")
    pf.set_defaults(func=cmd_pool_featurize)
    return p


def _campaign_name(arg: str) -> str:
    p = Path(arg)
    if p.suffix in (".yaml", ".yml"):
        return load_campaign(p).name
    return arg


def cmd_run(args) -> int:
    from workflow.engine import CampaignRunner, make_evaluator
    from workflow.presets import load_preset
    from workflow.profiles import load_profile

    campaign = load_campaign(args.campaign)
    profile = load_profile(args.profile)
    if campaign.oracle is None:
        load_preset(campaign.preset)
    runs = Path(args.runs)
    if args.dry_run:
        return _dry_run(campaign, profile, runs)
    print(f"campaign {campaign.name}: pool {campaign.pool}, objectives {campaign.objectives}, "
          f"{campaign.initial_size} initial + {campaign.cycles} cycles x {campaign.batch_size}, "
          f"preset {campaign.preset}, profile {profile.name} ({profile.workers_per_node} worker(s) x "
          f"{profile.cores_per_job} core(s))", flush=True)
    runner = CampaignRunner(campaign, runs, log=lambda m: print(m, flush=True))
    runner.run(make_evaluator(campaign, profile, runner.run_dir))
    print(f"done; store at {runner.store.path}. See: workflow status {campaign.name}; workflow pareto {campaign.name}")
    return 0


def _dry_run(campaign, profile, runs: Path) -> int:
    from workflow.engine import CampaignRunner, _safe

    runner = CampaignRunner(campaign, runs, log=lambda m: print(m, flush=True), dry_run=True)
    cycle, strategy, picks = runner.plan()
    print(f"dry run: nothing is submitted or written (campaign {campaign.name}, profile {profile.name})")
    if cycle is None:
        print("nothing left to select: the campaign is complete")
        return 0
    where = (f"{profile.scheduler} queue {profile.queue or '(default)'}" if profile.scheduler != "local"
             else "local worker processes")
    evaluator = (f"oracle table {campaign.oracle.table}" if campaign.oracle is not None
                 else f"property jobs, preset {campaign.preset}, {profile.cores_per_job} core(s) each, LAMMPS via "
                      f"'{profile.mpi_launcher.replace('{ranks}', str(profile.cores_per_job))}'")
    print(f"cycle {cycle} ({strategy}): {len(picks)} polymer(s) -> {evaluator}, on {where}")
    for pid, smi in picks:
        print(f"  {pid:<14} {smi:<50} {runner.run_dir / 'jobs' / ('NNNNN_' + _safe(pid))}")
    if campaign.oracle is None and profile.scheduler != "local":
        print(f"\nParsl submits blocks (up to {profile.max_blocks}) with this script "
              f"({profile.workers_per_node} worker(s) per node):\n")
        print(profile.batch_script())
    return 0


def cmd_profile_list(args) -> int:
    from workflow.profiles import find_profile, known_profiles, load_profile

    rows = []
    for name in known_profiles():
        try:
            p = load_profile(name)
            rows.append([p.name, p.scheduler, p.queue or "-", str(p.nodes_per_block), str(p.node_cores),
                         str(p.cores_per_job), p.walltime if p.scheduler != "local" else "-", str(find_profile(name))])
        except ConfigError as exc:
            rows.append([name, "INVALID", str(exc), "", "", "", "", str(find_profile(name))])
    header = ["name", "scheduler", "queue", "nodes", "cores/node", "cores/job", "walltime", "file"]
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)] if rows else [len(h) for h in header]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_profile_show(args) -> int:
    import yaml

    from workflow.profiles import find_profile, load_profile

    profile = load_profile(args.name)
    if args.script:
        print(profile.batch_script(), end="")
        return 0
    print(f"# {find_profile(args.name)}: {profile.workers_per_node} property job(s) per node, "
          f"{profile.nodes_per_block} node(s) per block, up to {profile.max_blocks} block(s)")
    print(yaml.safe_dump(profile.model_dump(), sort_keys=False), end="")
    return 0


def _open_store(args):
    from workflow.engine import store_path
    from workflow.store import Store

    name = _campaign_name(args.campaign)
    return name, Store(store_path(Path(args.runs), name), readonly=True)


def _objective_matrix(results, objectives: dict[str, str]):
    """Stored results -> ``n x 2`` tensor in maximisation form (columns in campaign order)."""
    import torch

    from surrogate.pareto import to_max_form

    names = list(objectives)
    Y = torch.tensor([[json.loads(r["objectives"])[n] for n in names] for r in results], dtype=torch.float64)
    return to_max_form(Y, [objectives[n] == "maximize" for n in names])


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_status(args) -> int:
    import time

    import torch

    from surrogate.pareto import hypervolume, pareto_mask, reference_point

    name, store = _open_store(args)
    jobs = store.jobs()
    cycles = sorted({r["cycle"] for r in store.cycles()})
    campaign = store.get_meta("campaign", {})
    mode = campaign.get("mode", "batch")
    print(f"campaign {name}: cycle {cycles[-1] if cycles else '-'} of {campaign.get('cycles', '?')} "
          f"(cycle 0 = initial design)" if mode == "batch" else
          f"campaign {name} (async): {len(jobs)} of "
          f"{campaign.get('initial_size', 0) + campaign.get('cycles', 0) * campaign.get('batch_size', 0)} jobs submitted")
    counts = Counter(j["state"] for j in jobs)
    print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    now = time.time()
    running = [j for j in jobs if j["state"] == "submitted"]
    for j in running:
        retry = f", attempt {j['attempts']}" if j["attempts"] > 1 else ""
        print(f"  running: {j['polymer_id']} (cycle {j['cycle']}, submitted {_age(now - j['submitted_at'])} ago{retry})")
    per_cycle = Counter((j["cycle"], j["state"]) for j in jobs)
    names = list(campaign.get("objectives", {}))
    results = store.results()
    hv_by_cycle: dict[int, float] = {}
    if results and len(names) == 2:
        Y = _objective_matrix(results, campaign["objectives"])
        ref = reference_point(Y)
        cyc = torch.tensor([r["cycle"] for r in results])
        for c in cycles:
            hv_by_cycle[c] = hypervolume(Y[cyc <= c], ref)
    for c in cycles:
        parts = [f"{s} {per_cycle[(c, s)]}" for s in ("submitted", "done", "failed") if per_cycle[(c, s)]]
        hv = f"; hypervolume {hv_by_cycle[c]:.4g}" if c in hv_by_cycle else ""
        print(f"  cycle {c}: " + ", ".join(parts) + hv)
    if hv_by_cycle:
        print("  (hypervolume of everything evaluated up to that cycle, reference point: worst observed minus "
              "10% of the range, in maximisation form)")
        front = [results[i] for i in torch.nonzero(pareto_mask(Y))[:, 0].tolist()]
        print(f"best so far ({len(front)} non-dominated; `workflow pareto {name}` lists them):")
        for r in sorted(front, key=lambda r: -json.loads(r["objectives"])[names[0]])[:5]:
            v = json.loads(r["objectives"])
            print(f"  {r['polymer_id']}: " + ", ".join(f"{n} {v[n]:.4g}" for n in names) + f" (cycle {r['cycle']})")
    failed = [j for j in jobs if j["state"] == "failed"]
    if failed:
        print("failures (excluded from selection):")
        for j in failed:
            print(f"  {j['polymer_id']} (cycle {j['cycle']}, {j['attempts']} attempt(s)): {j['failure_kind']} in "
                  f"{j['failure_stage']}: {j['failure_message']}")
    problems = store.pool_problems()
    if problems:
        print(f"pool entries skipped: {len(problems)}")
        for p in problems:
            print(f"  row {p['row']} (id {p['polymer_id']}, {p['stage']}): {p['problem']}")
    return 0


def cmd_pareto(args) -> int:

    from surrogate.pareto import pareto_mask

    name, store = _open_store(args)
    objectives: dict[str, str] = store.get_meta("campaign", {}).get("objectives", {})
    names = list(objectives)
    rows = store.results()
    if not rows:
        print(f"campaign {name}: no finished polymers yet")
        return 0
    values = [json.loads(r["objectives"]) for r in rows]
    mask = pareto_mask(_objective_matrix(rows, objectives))
    front = sorted((i for i in range(len(rows)) if mask[i]), key=lambda i: -values[i][names[0]])
    print(f"campaign {name}: {len(front)} non-dominated of {len(rows)} evaluated "
          f"({', '.join(f'{n} {objectives[n]}' for n in names)})")
    header = ["id", *names, "cycle", "psmiles"]
    table = [[rows[i]["polymer_id"], *(f"{values[i][n]:.4f}" for n in names), str(rows[i]["cycle"]), rows[i]["smiles"]]
             for i in front]
    widths = [max(len(h), *(len(r[k]) for r in table)) for k, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


def cmd_job_run(args) -> int:
    from workflow.job import JobFailure, run_property_job

    try:
        record = run_property_job(args.psmiles, args.preset, args.dir, cores=args.cores, seed=args.seed)
    except JobFailure as exc:
        print(json.dumps({"failed": True, "kind": exc.kind, "stage": exc.stage, "message": exc.message}))
        return 1
    print(json.dumps(record, indent=1, default=str))
    return 0


def cmd_pool_featurize(args) -> int:
    import pandas as pd

    from surrogate.descriptor import featurize
    from workflow.pool import load_pool

    pool = load_pool(args.pool)
    for p in pool.problems:
        print(f"{pool.path.name}: {p}; skipped", file=sys.stderr)
    feats = featurize(pool.entries["canonical"].tolist(), cache_path=args.cache, workers=args.workers,
                      timeout_s=args.timeout)
    for i, reason in sorted(feats.failures.items()):
        print(f"{pool.path.name}: id {pool.entries['id'].iloc[i]}: {reason}; skipped", file=sys.stderr)
    ok = [i for i in range(len(pool.entries)) if i not in feats.failures]
    from surrogate.descriptor import _descriptor_object

    cols = _descriptor_object().ffkm_desc_names()
    out = pd.DataFrame(feats.X[ok], columns=cols)
    out.insert(0, "id", pool.entries["id"].iloc[ok].to_numpy())
    out.insert(1, "smiles", pool.entries["smiles"].iloc[ok].to_numpy())
    out.to_parquet(args.out, index=False)
    print(f"wrote {len(out)} descriptors to {args.out} ({feats.cached} from cache, {feats.computed} computed, "
          f"{len(feats.failures)} failed, {feats.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
