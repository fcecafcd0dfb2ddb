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

from workflow.job import JobFailure, qm_stages, run_property_job  # noqa: E402
from workflow.optics import abbe_number, lorentz_lorenz  # noqa: E402
from workflow.presets import WAVELENGTHS_NM, load_preset  # noqa: E402

TEXTBOOK = {  # PSMILES, n_D, Abbe number, density g/cm^3
    "polystyrene": ("*C(C*)c1ccccc1", 1.592, 31.0, 1.05),
    "PMMA": ("*C(C*)(C(=O)OC)C", 1.492, 58.0, 1.18),
    "polycarbonate": ("*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C", 1.584, 31.0, 1.20),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="smoke | quick | full | preset YAML (default: quick)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("runs/benchmarks/validate"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qm-only", action="store_true",
                        help="charges and polarizabilities only; n_D and Abbe number at the textbook density")
    args = parser.parse_args()
    if args.qm_only:
        qm_only(args)
        return

    results: dict[str, dict] = {}
    for name, (psmiles, n_ref, abbe_ref, rho_ref) in TEXTBOOK.items():
        job_dir = args.dir / args.preset.replace("/", "_") / name
        t0 = time.monotonic()
        try:
            rec = run_property_job(psmiles, args.preset, job_dir, cores=args.cores, seed=args.seed)
        except JobFailure as exc:
            print(f"{name}: FAILED ({exc.kind} in {exc.stage}): {exc.message}", flush=True)
            results[name] = {"failed": exc.kind, "message": exc.message}
            continue
        results[name] = {
            "density": rec["density"], "density_ref": rho_ref, "density_dev": rec["density"] / rho_ref - 1,
            "n_D": rec["refractive_index"], "n_D_ref": n_ref, "n_D_dev": rec["refractive_index"] / n_ref - 1,
            "abbe": rec["abbe_number"], "abbe_ref": abbe_ref, "abbe_dev": rec["abbe_number"] / abbe_ref - 1,
            "equilibrated": rec["equilibrated"], "charge_model": rec["charge_model"],
            "stage_seconds": {k: round(v, 1) for k, v in rec["timings"].items()},
            "wall_s_this_call": round(time.monotonic() - t0, 1),
        }
        print(f"{name}: done in {time.monotonic() - t0:.0f} s", flush=True)

    print(f"\npreset {args.preset}, {args.cores} core(s) per job")
    print(f"{'polymer':<14} {'density':>8} {'ref':>5} {'dev':>7}  {'n_D':>6} {'ref':>6} {'dev':>7}  "
          f"{'Abbe':>6} {'ref':>4} {'dev':>7}  stages (s)")
    for name, r in results.items():
        if "failed" in r:
            print(f"{name:<14} failed: {r['failed']}")
            continue
        stages = ", ".join(f"{k} {v:g}" for k, v in r["stage_seconds"].items())
        print(f"{name:<14} {r['density']:8.3f} {r['density_ref']:5.2f} {r['density_dev']:+7.1%}  "
              f"{r['n_D']:6.3f} {r['n_D_ref']:6.3f} {r['n_D_dev']:+7.1%}  "
              f"{r['abbe']:6.1f} {r['abbe_ref']:4.0f} {r['abbe_dev']:+7.1%}  {stages}")
    print(json.dumps({"preset": args.preset, "cores": args.cores, "results": results}))


def qm_only(args: argparse.Namespace) -> None:
    preset = load_preset(args.preset)
    results: dict[str, dict] = {}
    for name, (psmiles, n_ref, abbe_ref, rho_ref) in TEXTBOOK.items():
        job_dir = (args.dir / args.preset.replace("/", "_") / name).resolve()  # the full job's directory
        job_dir.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        try:
            _, prep, qm = qm_stages(psmiles, preset, job_dir, args.cores, args.seed, timings)
        except JobFailure as exc:
            print(f"{name}: FAILED ({exc.kind} in {exc.stage}): {exc.message}", flush=True)
            results[name] = {"failed": exc.kind, "message": exc.message}
            continue
        n = {wl: lorentz_lorenz(qm[f"polarizability_{wl:g}nm"], rho_ref, prep["mol_weight"]) for wl in WAVELENGTHS_NM}
        n_f, n_d, n_c = (n[wl] for wl in WAVELENGTHS_NM)
        abbe = abbe_number(n_d, n_f, n_c)
        results[name] = {
            "alpha_static_A3": qm["polarizability_static"], "alpha_589nm_A3": qm["polarizability_589.3nm"],
            "density_used": rho_ref, "n_D": n_d, "n_D_ref": n_ref, "n_D_dev": n_d / n_ref - 1,
            "abbe": abbe, "abbe_ref": abbe_ref, "abbe_dev": abbe / abbe_ref - 1,
            "functional": qm["functional"], "basis": qm["basis"], "n_basis": qm["qm_n_basis"],
            "charge_model": prep["charge_model"],
            "stage_seconds": {k: round(v, 1) for k, v in timings.items()},  # empty when read back
        }
        print(f"{name}: done in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"\npreset {args.preset} (QM stages only, textbook density), {args.cores} core(s) per job")
    print(f"{'polymer':<14} {'alpha589':>8}  {'n_D':>6} {'ref':>6} {'dev':>7}  {'Abbe':>6} {'ref':>4} {'dev':>7}  stages (s)")
    for name, r in results.items():
        if "failed" in r:
            print(f"{name:<14} failed: {r['failed']}")
            continue
        stages = ", ".join(f"{k} {v:g}" for k, v in r["stage_seconds"].items()) or "(read back)"
        print(f"{name:<14} {r['alpha_589nm_A3']:8.2f}  {r['n_D']:6.3f} {r['n_D_ref']:6.3f} {r['n_D_dev']:+7.1%}  "
              f"{r['abbe']:6.1f} {r['abbe_ref']:4.0f} {r['abbe_dev']:+7.1%}  {stages}")
    print(json.dumps({"preset": args.preset, "cores": args.cores, "qm_only": True, "results": results}))


if __name__ == "__main__":
    main()
