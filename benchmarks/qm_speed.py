"""QM stage speed and accuracy: each part's wall time and the polarizabilities, per preset, beside a large basis.

    python benchmarks/qm_speed.py [--preset quick ...] [--polymer PS ...] [--cores 2]
                                  [--reference-basis aug-cc-pvtz | --no-reference]

For the capped units of polystyrene, PMMA and bisphenol-A polycarbonate (and for the cap reference
subtracted from each: ethane for CH3 caps, H2 for H caps), with each preset's QM settings: wall seconds of the conformer search,
the MD charges (the preset's charge model on RadonPy's monomer; 0 for Gasteiger), the DFT geometry
optimisation (where the preset asks for one), the SCF and the response equations (the static limit
and 486.1/589.3/656.3 nm, solved together); the repeat unit's isotropic alpha (static and the three
wavelengths, A^3) and its dispersion ratio (alpha_F - alpha_C)/alpha_D. With a reference basis the
same functional and geometry are run in that basis, and the deviations of alpha_D and of the
dispersion ratio are printed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.job.presets import WAVELENGTHS_NM, QMSettings, load_preset  # noqa: E402

POLYMERS = {
    "PS": "*C(C*)c1ccccc1",
    "PMMA": "*C(C*)(C(=O)OC)C",
    "PC": "*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C",
}


def charges_seconds(psmiles: str, charge_model: str, qm: QMSettings, cores: int) -> float:
    """Wall time of the MD charges on RadonPy's monomer (what the job's ``monomer`` stage computes)."""
    from workflow.job.md_cell import build_monomer

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        build_monomer(psmiles, charge_model, 0, qm, cores, Path(tmp))
    return time.monotonic() - t0


def measure(psmiles: str, qm: QMSettings, cores: int, cap_dir: Path) -> dict:
    from workflow.job.qm import repeat_unit_polarizability

    t0 = time.monotonic()
    r = repeat_unit_polarizability(psmiles, qm, threads=cores, cache_dir=cap_dir)
    t = r.timings
    return {
        "alpha_static": r.static_ang3, **{f"alpha_{wl:g}": r.dynamic_ang3[wl] for wl in WAVELENGTHS_NM},
        "dispersion_ratio": r.dispersion_ratio, "capped_alpha_static": r.capped_static_ang3,
        "n_basis": r.n_basis, "auxbasis": r.auxbasis, "iterations": r.response_iterations,
        "seconds": {"conformers": t.conformers, "geometry": t.geometry, "scf": t.scf, "response": t.response,
                    "cap": t.cap, "total": time.monotonic() - t0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="smoke | quick | full | YAML (repeatable; default: all three)")
    parser.add_argument("--polymer", action="append", choices=sorted(POLYMERS), help="default: PS, PMMA, PC")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reference-basis", default="aug-cc-pvtz")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--functional", help="override the preset's functional (method comparisons)")
    parser.add_argument("--basis", help="override the preset's basis (method comparisons)")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as caps:
        for preset_name in args.preset or ["smoke", "quick", "full"]:
            preset = load_preset(preset_name)
            update = {k: v for k, v in (("functional", args.functional), ("basis", args.basis)) if v}
            qm = preset.qm.model_copy(update=update)
            cap_dir = Path(caps) / "cap"
            for name in args.polymer or list(POLYMERS):
                row = {"preset": preset_name, "polymer": name, "functional": qm.functional, "basis": qm.basis}
                row["charges_s"] = (charges_seconds(POLYMERS[name], preset.charge_model, qm, args.cores)
                                    if preset.charge_model != "gasteiger" else 0.0)
                row |= measure(POLYMERS[name], qm, args.cores, cap_dir)
                if not args.no_reference:
                    ref = measure(POLYMERS[name], qm.model_copy(update={"basis": args.reference_basis}),
                                  args.cores, Path(caps) / "reference")
                    row["reference"] = ref
                    row["alpha_D_dev"] = row["alpha_589.3"] / ref["alpha_589.3"] - 1
                    row["ratio_dev"] = row["dispersion_ratio"] / ref["dispersion_ratio"] - 1
                results.append(row)
                s = row["seconds"]
                line = (f"{preset_name:<6} {name:<5} {qm.functional}/{qm.basis} nao {row['n_basis']}: "
                        f"conformers {s['conformers']:.1f} s, charges {row['charges_s']:.1f} s, "
                        f"geometry {s['geometry']:.1f} s, SCF {s['scf']:.1f} s, response {s['response']:.1f} s, "
                        f"cap reference {s['cap']:.1f} s; alpha static {row['alpha_static']:.2f}, "
                        + ", ".join(f"{wl:g} nm {row[f'alpha_{wl:g}']:.2f}" for wl in WAVELENGTHS_NM)
                        + f" A^3, ratio {row['dispersion_ratio']:.5f}")
                if "reference" in row:
                    line += (f"; vs {args.reference_basis} ({row['reference']['seconds']['total']:.0f} s): "
                             f"alpha_D {row['alpha_D_dev']:+.2%}, ratio {row['ratio_dev']:+.2%}")
                print(line, flush=True)
    print(json.dumps({"cores": args.cores, "reference_basis": None if args.no_reference else args.reference_basis,
                      "results": results}))


if __name__ == "__main__":
    main()
