"""A preset's fidelity across chemistry classes: density and n_D of a fixed, stratified PI1070 sample against
RadonPy's published full-protocol results (the same GAFF2_mod force field, so a density difference is the
protocol's, not the force field's).

    python benchmarks/fidelity.py --preset smoke [--jobs 2] [--cores 1] [--dir runs/fidelity] [--only PI1,PI2]
    python benchmarks/fidelity.py --preset smoke --qm-only     # the QM stage alone: n at the published density

Each polymer runs as a real property job (``workflow job run``, one process each) in ``DIR/PRESET/ID``; a
rerun resumes from those directories (finished jobs are read back). Printed per polymer: density against the
published one (%), n_D (589.3 nm) and the static n against the published n (RadonPy's is from the static
polarizability), the static n this QM would give at the published density (the QM's share of the error), and
each stage's wall seconds; then per-class means and the overall figures; a JSON line last.

The published n comes from RadonPy's own QM (the static polarizability of its H-terminated monomer), so n
against it compares two QM methods, not the truth: the density is the direct check. ``--qm-only --versus
quick`` compares this preset's QM with ``quick``'s (checked against experiment) at the same, published density.
The experimental check of n_D and the Abbe number stays ``validate_properties.py`` on the eight optical
reference polymers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._pi1070 import DEFAULT_DATA  # noqa: E402
from workflow.job.optics import lorentz_lorenz  # noqa: E402

# (PI1070 id, name): four polymers per class, fixed so that runs compare across presets and sessions
SAMPLE: dict[str, tuple[tuple[str, str], ...]] = {
    "polyolefins": (("PI1", "polyethylene"), ("PI2", "polypropylene"), ("PI3", "poly(1-butene)"),
                    ("PI13", "polyisobutylene")),
    "vinyl halides and fluoropolymers": (("PI509", "PVC"), ("PI510", "PVDF"), ("PI511", "PVDC"), ("PI513", "PTFE")),
    "acrylates, methacrylates, vinyl esters": (("PI411", "poly(methyl acrylate)"), ("PI412", "poly(ethyl acrylate)"),
                                               ("PI415", "poly(butyl acrylate)"), ("PI259", "poly(vinyl acetate)")),
    "polyethers, polyols, polyacids": (("PI524", "poly(ethylene oxide)"), ("PI525", "poly(propylene oxide)"),
                                       ("PI241", "poly(vinyl alcohol)"), ("PI410", "poly(acrylic acid)")),
    "nitriles, amides, imides": (("PI249", "polyacrylonitrile"), ("PI609", "nylon 6"), ("PI455", "polyacrylamide"),
                                 ("PI408", "poly(vinyl pyrrolidone)")),
    "polyesters, polycarbonates": (("PI562", "PET"), ("PI574", "polycaprolactone"), ("PI590", "poly(lactic acid)"),
                                   ("PI793", "bisphenol A polycarbonate")),
    "aromatic and sulfur backbones": (("PI82", "polystyrene"), ("PI555", "poly(phenylene sulfide)"),
                                      ("PI528", "poly(phenylene oxide)"), ("PI536", "polyethersulfone")),
}


def run_job(smiles: str, job_dir: Path, preset: str, cores: int, seed: int) -> dict:
    """The job's record (``record.json``), run or resumed in its own process; ``{"error": ...}`` if it failed."""
    record = job_dir / "record.json"
    t0 = time.monotonic()
    if not record.is_file():
        job_dir.mkdir(parents=True, exist_ok=True)
        with open(job_dir / "benchmark.log", "a") as log:
            proc = subprocess.run([sys.executable, "-m", "workflow.cli", "job", "run", smiles, "--preset", preset,
                                   "--dir", str(job_dir), "--cores", str(cores), "--seed", str(seed)],
                                  stdout=subprocess.PIPE, stderr=log, text=True)
        if not record.is_file():
            last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            return {"error": json.loads(last[-1]).get("message", "failed") if last else f"exit {proc.returncode}"}
    rec = json.loads(record.read_text())
    rec["benchmark_seconds"] = time.monotonic() - t0
    return rec


def qm_only_figures(pid: str, name: str, cls: str, pub: pd.Series, job_dir: Path, preset, cores: int) -> dict:
    """The QM stage alone (in this process: PySCF does not change directory): the static and 589.3 nm n at the
    published density, against the published n (RadonPy's static polarizability at its density)."""
    from workflow.job import JobSpec
    from workflow.job.stages import run_stages

    out = {"id": pid, "name": name, "class": cls, "rho_pub": float(pub["density"]), "n_pub": float(pub["refractive_index"])}
    try:
        done = run_stages(JobSpec(pub["smiles"], preset, cores=cores), job_dir, ("qm", "prep"))
    except Exception as exc:  # a failed polymer is a row of the table, not the end of the benchmark
        return out | {"error": f"{type(exc).__name__}: {exc}"}
    qm, m = done["qm"], done["prep"].mol_weight
    n_static = lorentz_lorenz(qm.polarizability_static, out["rho_pub"], m)
    return out | {"n_static_at_pub_rho_err": n_static - out["n_pub"],
                  "n_D_at_pub_rho": lorentz_lorenz(qm.polarizability_d, out["rho_pub"], m),
                  "n_static_at_pub_rho": n_static, "qm_seconds": round(sum(
                      getattr(qm, f) for f in ("qm_seconds_conformers", "qm_seconds_geometry", "qm_seconds_scf",
                                               "qm_seconds_response", "qm_seconds_cap")), 1)}


def qm_only(chosen, table: pd.DataFrame, preset_dir: Path, preset_name: str, cores: int, versus: str | None) -> dict:
    from workflow.job.presets import load_preset

    preset = load_preset(preset_name)
    rows = [qm_only_figures(pid, name, cls, table.loc[pid], preset_dir / pid, preset, cores) for pid, name, cls in chosen]
    if versus:  # the other preset's QM at the same density: the n difference is the QM's alone
        other = load_preset(versus)
        for r, (pid, name, cls) in zip(rows, chosen):
            ref = qm_only_figures(pid, name, cls, table.loc[pid], preset_dir.parent / Path(versus).stem / pid, other, cores)
            if "error" not in r and "error" not in ref:
                r["n_D_vs_versus"] = r["n_D_at_pub_rho"] - ref["n_D_at_pub_rho"]
    print(f"preset {preset_name}, QM stage only: n at the published density against the published n")
    print(f"{'id':7} {'polymer':27} {'n_st':>6} {'n_D':>6} {'pub':>6} {'dn_st':>7} {'dn_D vs ' + (versus or '-'):>14}  "
          f"QM seconds")
    for r in rows:
        if "error" in r:
            print(f"{r['id']:7} {r['name'][:27]:27} FAILED: {r['error'][:90]}")
            continue
        vs = f"{r['n_D_vs_versus']:+14.4f}" if "n_D_vs_versus" in r else f"{'-':>14}"
        print(f"{r['id']:7} {r['name'][:27]:27} {r['n_static_at_pub_rho']:6.3f} {r['n_D_at_pub_rho']:6.3f} "
              f"{r['n_pub']:6.3f} {r['n_static_at_pub_rho_err']:+7.3f} {vs}  {r['qm_seconds']}")
    ok = pd.DataFrame([r for r in rows if "error" not in r])
    summary = {"preset": preset_name, "qm_only": True, "polymers": len(rows), "failed": len(rows) - len(ok)}
    if len(ok):
        print("\nper class (means): n_static err at the published density")
        per_class = {cls: round(g.n_static_at_pub_rho_err.mean(), 4) for cls, g in ok.groupby("class", sort=False)}
        for cls, v in per_class.items():
            print(f"  {cls:40} {v:+7.3f}")
        summary |= {"n_static_at_published_density_mae": round(ok.n_static_at_pub_rho_err.abs().mean(), 4),
                    "n_static_at_published_density_mean_err": round(ok.n_static_at_pub_rho_err.mean(), 4),
                    "qm_seconds_median": float(ok.qm_seconds.median()), "per_class": per_class}
        print(f"\nMAE {summary['n_static_at_published_density_mae']:.4f}, mean error "
              f"{summary['n_static_at_published_density_mean_err']:+.4f}")
        if "n_D_vs_versus" in ok:
            summary |= {f"n_D_vs_{Path(versus).stem}_mae": round(ok.n_D_vs_versus.abs().mean(), 4),
                        f"n_D_vs_{Path(versus).stem}_mean": round(ok.n_D_vs_versus.mean(), 4)}
            print(f"n_D against {versus}'s QM at the same density: MAE {ok.n_D_vs_versus.abs().mean():.4f}, "
                  f"mean {ok.n_D_vs_versus.mean():+.4f}")
    return summary


def row_figures(pid: str, name: str, cls: str, pub: pd.Series, rec: dict) -> dict:
    out = {"id": pid, "name": name, "class": cls, "rho_pub": float(pub["density"]),
           "n_pub": float(pub["refractive_index"])}
    if "error" in rec:
        return out | {"error": rec["error"]}
    rho, m = rec["density"], rec["mol_weight_unit"]
    n_at_pub = lorentz_lorenz(rec["polarizability_static"], out["rho_pub"], m)
    return out | {
        "rho": rho, "rho_err_pct": 100 * (rho / out["rho_pub"] - 1),
        "n_D": rec["refractive_index"], "n_static": rec["refractive_index_static"],
        "n_D_err": rec["refractive_index"] - out["n_pub"], "n_static_err": rec["refractive_index_static"] - out["n_pub"],
        "n_static_at_pub_rho_err": n_at_pub - out["n_pub"], "abbe": rec["abbe_number"],
        "atoms": rec["n_atoms_cell"], "units_per_chain": rec["n_units_per_chain"],
        "seconds": {k: round(v, 1) for k, v in rec["timings"].items()},
    }


def report(rows: list[dict], preset: str) -> dict:
    """Print the per-polymer table, the per-class means and the overall figures; return them."""
    print(f"preset {preset}: {len(rows)} polymers against PI1070 (RadonPy's published results)")
    print(f"{'id':7} {'polymer':27} {'rho':>6} {'pub':>6} {'err%':>6} {'n_D':>6} {'n_st':>6} {'pub':>6} "
          f"{'dn_D':>7} {'dn_st':>7} {'dn@rho':>7}  stage seconds")
    for r in rows:
        if "error" in r:
            print(f"{r['id']:7} {r['name'][:27]:27} FAILED: {r['error'][:90]}")
            continue
        secs = ", ".join(f"{k} {v:g}" for k, v in r["seconds"].items() if not k.startswith("md_"))
        print(f"{r['id']:7} {r['name'][:27]:27} {r['rho']:6.3f} {r['rho_pub']:6.3f} {r['rho_err_pct']:+6.1f} "
              f"{r['n_D']:6.3f} {r['n_static']:6.3f} {r['n_pub']:6.3f} {r['n_D_err']:+7.3f} {r['n_static_err']:+7.3f} "
              f"{r['n_static_at_pub_rho_err']:+7.3f}  {secs}")
    ok = pd.DataFrame([r for r in rows if "error" not in r])
    summary: dict = {"preset": preset, "polymers": len(rows), "failed": len(rows) - len(ok)}
    if len(ok):
        print("\nper class (means):  density err %  |density err| %  n_static err  n_static err at published rho")
        per_class = {}
        for cls, g in ok.groupby("class", sort=False):
            per_class[cls] = {"n": len(g), "rho_err_pct": round(g.rho_err_pct.mean(), 2),
                              "n_static_err": round(g.n_static_err.mean(), 4),
                              "n_static_at_pub_rho_err": round(g.n_static_at_pub_rho_err.mean(), 4)}
            print(f"  {cls:40} {g.rho_err_pct.mean():+6.1f}  {g.rho_err_pct.abs().mean():6.1f}  "
                  f"{g.n_static_err.mean():+7.3f}  {g.n_static_at_pub_rho_err.mean():+7.3f}")
        summary |= {"density_err_pct_mean": round(ok.rho_err_pct.mean(), 2),
                    "density_abs_err_pct_mean": round(ok.rho_err_pct.abs().mean(), 2),
                    "n_static_mae": round(ok.n_static_err.abs().mean(), 4),
                    "n_D_mae_vs_published_static": round(ok.n_D_err.abs().mean(), 4),
                    "n_static_at_published_density_mae": round(ok.n_static_at_pub_rho_err.abs().mean(), 4),
                    "job_seconds_median": round(float(np.median([sum(v for k, v in r["seconds"].items()
                                                                     if not k.startswith("md_"))
                                                                 for r in rows if "error" not in r])), 1),
                    "per_class": per_class}
        print(f"\ndensity error mean {summary['density_err_pct_mean']:+.2f}% (|err| {summary['density_abs_err_pct_mean']:.2f}%); "
              f"n_static MAE {summary['n_static_mae']:.4f} (at the published density {summary['n_static_at_published_density_mae']:.4f})")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="smoke", help="smoke | quick | full | a preset YAML")
    ap.add_argument("--dir", type=Path, default=Path("runs/fidelity"), help="job directories (resumed)")
    ap.add_argument("--jobs", type=int, default=1, help="jobs at a time")
    ap.add_argument("--cores", type=int, default=1, help="cores per job")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated PI1070 ids")
    ap.add_argument("--qm-only", action="store_true", help="the QM stage alone, n at the published density")
    ap.add_argument("--versus", help="with --qm-only: another preset whose QM (run or read back) is the reference")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PI1070.csv")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"fidelity: {args.data} not found (the published PI1070 table; see ../shared/README.md)", file=sys.stderr)
        return 2
    table = pd.read_csv(args.data).set_index("monomer_ID")
    chosen = [(pid, name, cls) for cls, rows in SAMPLE.items() for pid, name in rows
              if not args.only or pid in args.only.split(",")]
    preset_dir = args.dir.resolve() / Path(args.preset).stem
    t0 = time.monotonic()
    if args.qm_only:
        summary = qm_only(chosen, table, preset_dir, args.preset, args.cores, args.versus)
        print(json.dumps(summary | {"wall_seconds": round(time.monotonic() - t0, 1)}))
        return 0 if not summary["failed"] else 1
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(lambda c: run_job(table.loc[c[0], "smiles"], preset_dir / c[0], args.preset,
                                                  args.cores, args.seed), chosen))
    rows = [row_figures(pid, name, cls, table.loc[pid], rec) for (pid, name, cls), rec in zip(chosen, records)]
    summary = report(rows, args.preset) | {"wall_seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(summary))
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
