"""Property-job validation: polystyrene, PMMA and bisphenol-A polycarbonate against textbook values.

    python benchmarks/validate_properties.py [--preset quick] [--cores 8] [--dir runs/benchmarks/validate]

Runs one property job per polymer with the preset (sequentially, each on ``--cores``), then prints
density, n_D and Abbe number beside the textbook values (n_D 1.592 / 1.492 / 1.584, Abbe number
31 / 58 / 31, density 1.05 / 1.18 / 1.20 g/cm^3), the relative deviations, and the wall time of
each stage. Job directories are kept: a second call resumes unfinished jobs and re-reads finished
ones. ``--preset quick`` is the intended run (hours on 8 cores per polymer); ``--preset smoke``
checks the script in minutes (its numbers are not physics). Ends with one JSON line.

``--qm-only`` runs the stages before the MD (charges, the preset's polarizabilities at the three
wavelengths) and evaluates Lorentz-Lorenz with the textbook density instead of the MD density:
it validates the quantum-chemistry half of the preset where a machine cannot afford the MD.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.job import JobFailure, JobSpec, run_property_job  # noqa: E402
from workflow.job.presets import load_preset  # noqa: E402
from workflow.job.stages import optical_properties, run_stages  # noqa: E402

TEXTBOOK = {  # PSMILES, n_D, Abbe number, density g/cm^3
    "polystyrene": ("*C(C*)c1ccccc1", 1.592, 31.0, 1.05),
    "PMMA": ("*C(C*)(C(=O)OC)C", 1.492, 58.0, 1.18),
    "polycarbonate": ("*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C", 1.584, 31.0, 1.20),
}


def job_spec(psmiles: str, args: argparse.Namespace) -> JobSpec:
    return JobSpec(psmiles, load_preset(args.preset), seed=args.seed, cores=args.cores)


def full_job(psmiles: str, rho_ref: float, job_dir: Path, args: argparse.Namespace) -> dict:
    """The whole property job; density from the MD."""
    rec = run_property_job(job_spec(psmiles, args), job_dir)
    return {"density": rec["density"], "density_ref": rho_ref, "density_dev": rec["density"] / rho_ref - 1,
            "n_D": rec["refractive_index"], "abbe": rec["abbe_number"], "equilibrated": rec["equilibrated"],
            "charge_model": rec["charge_model"], "stage_seconds": {k: round(v, 1) for k, v in rec["timings"].items()}}


def qm_only_job(psmiles: str, rho_ref: float, job_dir: Path, args: argparse.Namespace) -> dict:
    """The stages before the MD; Lorentz-Lorenz at the textbook density."""
    done = run_stages(job_spec(psmiles, args), job_dir, ("prep", "qm"))
    prep, qm, timings = done["prep"], done["qm"], done["timings"]
    optics = optical_properties(qm, rho_ref, prep["mol_weight"])
    return {"alpha_static_A3": qm["polarizability_static"], "alpha_589nm_A3": qm["polarizability_589.3nm"],
            "density_used": rho_ref, "n_D": optics["refractive_index"], "abbe": optics["abbe_number"],
            "functional": qm["functional"], "basis": qm["basis"], "n_basis": qm["qm_n_basis"],
            "charge_model": prep["charge_model"],
            "stage_seconds": {k: round(v, 1) for k, v in timings.items()}}  # empty when read back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="smoke | quick | full | preset YAML (default: quick)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("runs/benchmarks/validate"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qm-only", action="store_true",
                        help="charges and polarizabilities only; n_D and Abbe number at the textbook density")
    args = parser.parse_args()
    measure = qm_only_job if args.qm_only else full_job

    results: dict[str, dict] = {}
    for name, (psmiles, n_ref, abbe_ref, rho_ref) in TEXTBOOK.items():
        job_dir = args.dir / args.preset.replace("/", "_") / name  # the same directory in both modes
        t0 = time.monotonic()
        try:
            r = measure(psmiles, rho_ref, job_dir, args)
        except JobFailure as exc:
            print(f"{name}: FAILED ({exc.kind} in {exc.stage}): {exc.message}", flush=True)
            results[name] = {"failed": exc.kind, "message": exc.message}
            continue
        results[name] = r | {"n_D_ref": n_ref, "n_D_dev": r["n_D"] / n_ref - 1, "abbe_ref": abbe_ref,
                             "abbe_dev": r["abbe"] / abbe_ref - 1, "wall_s_this_call": round(time.monotonic() - t0, 1)}
        print(f"{name}: done in {time.monotonic() - t0:.0f} s", flush=True)

    mode = " (QM stages only, textbook density)" if args.qm_only else ""
    print(f"\npreset {args.preset}{mode}, {args.cores} core(s) per job")
    first = f"{'alpha589':>8}" if args.qm_only else f"{'density':>8} {'ref':>5} {'dev':>7}"
    print(f"{'polymer':<14} {first}  {'n_D':>6} {'ref':>6} {'dev':>7}  {'Abbe':>6} {'ref':>4} {'dev':>7}  stages (s)")
    for name, r in results.items():
        if "failed" in r:
            print(f"{name:<14} failed: {r['failed']}")
            continue
        first = (f"{r['alpha_589nm_A3']:8.2f}" if args.qm_only
                 else f"{r['density']:8.3f} {r['density_ref']:5.2f} {r['density_dev']:+7.1%}")
        stages = ", ".join(f"{k} {v:g}" for k, v in r["stage_seconds"].items()) or "(read back)"
        print(f"{name:<14} {first}  {r['n_D']:6.3f} {r['n_D_ref']:6.3f} {r['n_D_dev']:+7.1%}  "
              f"{r['abbe']:6.1f} {r['abbe_ref']:4.0f} {r['abbe_dev']:+7.1%}  {stages}")
    print(json.dumps({"preset": args.preset, "cores": args.cores, "qm_only": args.qm_only, "results": results}))


if __name__ == "__main__":
    main()
