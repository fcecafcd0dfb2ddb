"""Property-job validation against experiment: n_D, Abbe number and density of reference polymers.

    python benchmarks/validate_properties.py [--preset quick] [--cores 2] [--dir runs/benchmarks/validate]
                                             [--reference FILE] [--qm-only] [--only ID ...]

Without ``--reference`` the polymers are polystyrene, PMMA and bisphenol-A polycarbonate with
textbook values (n_D 1.592 / 1.492 / 1.584, Abbe number 31 / 58 / 31, density 1.05 / 1.18 / 1.20
g/cm^3). ``--reference FILE`` reads a table with columns ``id, smiles, exp_refractive_index,
exp_abbe_number`` and optional ``handbook_density``, ``radonpy_refractive_index``,
``radonpy_abbe_number`` (``../shared/data/optical_reference.csv`` has 8 polymers); a missing
column is a one-line error.

Runs one property job per polymer with the preset (sequentially, each on ``--cores``) and prints
density, n_D and Abbe number beside experiment (and RadonPy's published values where the table
has them), the errors, the MAE and the wall time of each stage. Job directories are kept: a
second call resumes unfinished jobs and re-reads finished ones. Ends with one JSON line.

``--qm-only`` runs the QM stage alone (the preset's polarizabilities at the three wavelengths) and
tests it without the MD: n_D at the handbook density (where the table gives one) and the Abbe
number at the experimental n_D (Lorentz-Lorenz at fixed density: the Abbe number then depends on
the dispersion ratio (alpha_F - alpha_C)/alpha_D alone).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.common.chem import unit_mol_weight  # noqa: E402
from workflow.common.files import safe_name  # noqa: E402
from workflow.dispatch.profiles import load_profile  # noqa: E402
from workflow.job import JobFailure, JobSpec, run_property_job  # noqa: E402
from workflow.job.md import LammpsCommand  # noqa: E402
from workflow.job.optics import abbe_at_index, lorentz_lorenz  # noqa: E402
from workflow.job.presets import WAVELENGTHS_NM, load_preset  # noqa: E402
from workflow.job.stages import run_stages  # noqa: E402
from workflow.results.calibrate import read_reference  # noqa: E402

TEXTBOOK = pd.DataFrame({
    "id": ["polystyrene", "PMMA", "polycarbonate"],
    "smiles": ["*C(C*)c1ccccc1", "*C(C*)(C(=O)OC)C", "*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C"],
    "exp_refractive_index": [1.592, 1.492, 1.584],
    "exp_abbe_number": [31.0, 58.0, 31.0],
    "handbook_density": [1.05, 1.18, 1.20],
})


def _number(row: pd.Series, column: str) -> float | None:
    value = pd.to_numeric(row.get(column), errors="coerce")
    return None if value is None or not math.isfinite(value) else float(value)


def job_spec(psmiles: str, args: argparse.Namespace) -> JobSpec:
    lammps = load_profile(args.profile).lammps_command() if args.profile else LammpsCommand()
    return JobSpec(psmiles, load_preset(args.preset), seed=args.seed, cores=args.cores,
                   shared_dir=args.dir / "shared", lammps=lammps)


def full_job(row: pd.Series, job_dir: Path, args: argparse.Namespace) -> dict:
    """The whole property job; density from the MD."""
    rec = run_property_job(job_spec(row["smiles"], args), job_dir)
    return {"density": rec["density"], "n_D": rec["refractive_index"], "abbe": rec["abbe_number"],
            "equilibrated": rec["equilibrated"], "charge_model": rec["charge_model"],
            "dispersion_ratio": rec["dispersion_ratio"],
            "stage_seconds": {k: round(v, 1) for k, v in rec["timings"].items()}}


def qm_only_job(row: pd.Series, job_dir: Path, args: argparse.Namespace) -> dict:
    """The QM stage; n_D at the handbook density, the Abbe number at the experimental n_D."""
    done = run_stages(job_spec(row["smiles"], args), job_dir, ("qm",))
    qm = done["qm"]
    alpha = dict(zip(WAVELENGTHS_NM, qm.dynamic()))
    rho = _number(row, "handbook_density")
    n_d = lorentz_lorenz(alpha[589.3], rho, unit_mol_weight(row["smiles"])) if rho else None
    n_exp = _number(row, "exp_refractive_index")  # a blank cell: no Abbe number at the experimental index
    return {"alpha_589nm_A3": alpha[589.3], "dispersion_ratio": qm.dispersion_ratio, "density_used": rho,
            "n_D": n_d, "abbe": abbe_at_index(n_exp, *alpha.values()) if n_exp is not None else None,
            "functional": qm.functional, "basis": qm.basis, "n_basis": qm.qm_n_basis,
            "stage_seconds": {k: round(v, 1) for k, v in done["timings"].items()}}  # empty when read back


def errors(r: dict, row: pd.Series) -> dict:
    """Signed errors against experiment and RadonPy's published values (where both numbers exist)."""
    out = {}
    for key, exp, published in (("n_D", "exp_refractive_index", "radonpy_refractive_index"),
                                ("abbe", "exp_abbe_number", "radonpy_abbe_number"),
                                ("density", "handbook_density", None)):
        value, ref = r.get(key), _number(row, exp)
        if value is not None and ref is not None:
            out[f"{key}_err"] = value - ref
        if published and value is not None and _number(row, published) is not None:
            out[f"{key}_vs_radonpy"] = value - _number(row, published)
            if ref is not None:
                out[f"{key}_radonpy_err"] = _number(row, published) - ref
    return out


def mae(results: dict[str, dict], key: str) -> tuple[float | None, int]:
    values = [abs(r[key]) for r in results.values() if r.get(key) is not None]
    return (sum(values) / len(values) if values else None), len(values)


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "-".rjust(len(format(0.0, spec)))


def table_row(row: pd.Series, r: dict) -> str:
    """One polymer's line of the printed table; "-" where the reference or the result has no number."""
    if "failed" in r:
        return f"{row['id']!s:<10} failed: {r['failed']}"
    stages = ", ".join(f"{k} {v:g}" for k, v in r["stage_seconds"].items()) or "(read back)"
    return (f"{row['id']!s:<10} {_fmt(r.get('density', r.get('density_used')), '5.3f')} {_fmt(r.get('n_D'), '6.3f')} "
            f"{_fmt(_number(row, 'exp_refractive_index'), '6.3f')} {_fmt(r.get('n_D_err'), '+7.3f')} "
            f"{_fmt(_number(row, 'radonpy_refractive_index'), '7.3f')}  {_fmt(r.get('abbe'), '5.1f')} "
            f"{_fmt(_number(row, 'exp_abbe_number'), '5.1f')} {_fmt(r.get('abbe_err'), '+6.1f')} "
            f"{_fmt(_number(row, 'radonpy_abbe_number'), '7.1f')}  {r['dispersion_ratio']:.5f}  {stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="smoke | quick | full | preset YAML (default: quick)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("runs/benchmarks/validate"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", help="LAMMPS as this profile runs it (e.g. local: -sf omp); default plain")
    parser.add_argument("--reference", type=Path, help="reference table (default: the three textbook polymers)")
    parser.add_argument("--only", action="append", help="run only this id (repeatable)")
    parser.add_argument("--qm-only", action="store_true",
                        help="QM stage only: n_D at the handbook density, Abbe number at the experimental n_D")
    args = parser.parse_args()
    args.dir = args.dir.resolve()
    table = read_reference(args.reference) if args.reference else TEXTBOOK
    if args.only:
        table = table[table["id"].astype(str).isin(args.only)]
    measure = qm_only_job if args.qm_only else full_job

    results: dict[str, dict] = {}
    t_all = time.monotonic()
    for _, row in table.iterrows():
        name = str(row["id"])
        job_dir = args.dir / safe_name(args.preset) / safe_name(name)  # the same directory in both modes
        t0 = time.monotonic()
        try:
            r = measure(row, job_dir, args)
        except JobFailure as exc:
            print(f"{name}: FAILED ({exc.kind} in {exc.stage}): {exc.message}", flush=True)
            results[name] = {"failed": exc.kind, "message": exc.message}
            continue
        results[name] = r | errors(r, row) | {"wall_s_this_call": round(time.monotonic() - t0, 1)}
        print(f"{name}: done in {time.monotonic() - t0:.0f} s", flush=True)
    wall = time.monotonic() - t_all

    mode = " (QM stage only: n_D at handbook density, Abbe number at experimental n_D)" if args.qm_only else ""
    print(f"\npreset {args.preset}{mode}, {args.cores} core(s) per job, {wall:.0f} s in all")
    print(f"{'polymer':<10} {'rho':>5} {'n_D':>6} {'exp':>6} {'err':>7} {'RadonPy':>7}  "
          f"{'Abbe':>5} {'exp':>5} {'err':>6} {'RadonPy':>7}  {'ratio':>7}  stages (s)")
    for _, row in table.iterrows():
        print(table_row(row, results[str(row["id"])]))
    summary = {}
    for key, label in (("n_D_err", "n_D"), ("n_D_radonpy_err", "n_D (RadonPy)"), ("abbe_err", "Abbe"),
                       ("abbe_radonpy_err", "Abbe (RadonPy)"), ("density_err", "density")):
        value, n = mae(results, key)
        if value is not None:
            summary[key] = {"mae": value, "n": n}
            print(f"MAE {label:<15} {value:.4g} over {n} polymer(s)")
    print(json.dumps({"preset": args.preset, "cores": args.cores, "qm_only": args.qm_only, "wall_s": wall,
                      "reference": str(args.reference) if args.reference else "textbook", "mae": summary,
                      "results": results}))


if __name__ == "__main__":
    main()
