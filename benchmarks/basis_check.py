"""A preset's QM basis against a large reference basis, over elements and units (not the optical reference polymers).

For small molecules (their isotropic alpha) and for H- or CH3-capped repeat units (the unit's alpha: capped molecule
less its cap reference, as the job computes it) this prints alpha_D (589.3 nm) and the dispersion ratio
(alpha_F - alpha_C) / alpha_D in each basis, and their relative errors against the reference basis; the other QM
settings are the preset's, so only the basis differs. Ends with one JSON line.

    python benchmarks/basis_check.py --preset quick
    python benchmarks/basis_check.py --preset quick --basis "6-31+g(d,p)" --basis "aug-cc-pvdz|C=6-31+g(d,p)" --unit PS

A basis is a name, or a name followed by per-element exceptions: ``"aug-cc-pvdz|C=6-31+g(d,p)"``; ``preset`` is the
preset's own (its ``basis`` and ``element_basis``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflow.job.optics import dispersion_ratio  # noqa: E402
from workflow.job.presets import WAVELENGTHS_NM, QMSettings, load_preset  # noqa: E402

MOLECULES = {  # one or two of each element's common bonding situations in polymers
    "hexafluoroethane": "FC(F)(F)C(F)(F)F",
    "dimethyl sulfide": "CSC",
    "dimethyl sulfone": "CS(C)(=O)=O",
    "chloromethane": "CCl",
    "dimethyl ether": "COC",
    "trimethylamine": "CN(C)C",
}
UNITS = {"PS": "*C(C*)c1ccccc1", "TPX": "*C(C*)CC(C)C", "PMMA": "*C(C*)(C(=O)OC)C"}


def settings_for(qm: QMSettings, spec: str) -> QMSettings:
    """The preset's QM settings with the basis ``spec`` (see the module docstring)."""
    if spec == "preset":
        return qm
    name, *exceptions = spec.split("|")
    element_basis = {}
    for item in exceptions:
        element, sep, basis = item.partition("=")
        if not sep or not element or not basis:
            raise SystemExit(f"basis {spec!r}: an exception must read ELEMENT=BASIS, got {item!r}")
        element_basis[element] = basis
    return qm.model_copy(update={"basis": name, "element_basis": element_basis})


def molecule_alphas(smiles: str, qm: QMSettings, cores: int) -> tuple[list[float], int]:
    """Isotropic alpha (A^3) at 0 and the three wavelengths, and the AO count."""
    from pyscf import lib
    from rdkit import Chem

    from workflow.job.qm import isotropic_polarizabilities
    from workflow.job.qm_geometry import lowest_conformer

    geometry = lowest_conformer(Chem.AddHs(Chem.MolFromSmiles(smiles)), qm.n_conformers)
    with lib.with_omp_threads(cores):
        alphas, mf, _, _, _ = isotropic_polarizabilities(geometry, qm)
    return alphas, int(mf.mol.nao)


def unit_alphas(psmiles: str, qm: QMSettings, cores: int, cap_dir: Path) -> tuple[list[float], int]:
    from workflow.job.qm import repeat_unit_polarizability

    r = repeat_unit_polarizability(psmiles, qm, threads=cores, cache_dir=cap_dir)
    return [r.static_ang3] + [r.dynamic_ang3[wl] for wl in WAVELENGTHS_NM], r.n_basis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--basis", action="append", help="basis to check (repeatable; default: preset)")
    parser.add_argument("--reference-basis", default="aug-cc-pvtz")
    parser.add_argument("--molecule", action="append", choices=sorted(MOLECULES),
                        help="repeatable; with neither --molecule nor --unit: every molecule and unit")
    parser.add_argument("--unit", action="append", choices=sorted(UNITS), help="repeatable")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--cap-dir", type=Path, default=Path("runs/benchmarks/basis_check"))
    args = parser.parse_args()
    qm = load_preset(args.preset).qm
    bases = (args.basis or ["preset"]) + [args.reference_basis]
    everything = not (args.molecule or args.unit)
    jobs = [("molecule", name, MOLECULES[name]) for name in (MOLECULES if everything else args.molecule or [])]
    jobs += [("unit", name, UNITS[name]) for name in (UNITS if everything else args.unit or [])]

    rows = []
    for kind, name, smiles in jobs:
        results = {}
        for spec in bases:
            settings = settings_for(qm, spec)
            t0 = time.monotonic()
            if kind == "molecule":
                alphas, nao = molecule_alphas(smiles, settings, args.cores)
            else:
                alphas, nao = unit_alphas(smiles, settings, args.cores, args.cap_dir)
            a_d = alphas[2]
            results[spec] = {"alpha_D": a_d, "ratio": dispersion_ratio(*alphas[1:]), "n_basis": nao,
                             "seconds": time.monotonic() - t0}
        ref = results[args.reference_basis]
        for spec in bases[:-1]:
            r = results[spec]
            r["alpha_D_err_pct"] = 100 * (r["alpha_D"] / ref["alpha_D"] - 1)
            r["ratio_err_pct"] = 100 * (r["ratio"] / ref["ratio"] - 1)
            print(f"{kind:<8} {name:<17} {spec:<28} {r['n_basis']:4d} AOs  alpha_D {r['alpha_D']:8.4f} "
                  f"({r['alpha_D_err_pct']:+5.1f}%)  ratio {r['ratio']:.5f} ({r['ratio_err_pct']:+5.1f}%)  "
                  f"{r['seconds']:6.1f} s", flush=True)
        print(f"{kind:<8} {name:<17} {args.reference_basis:<28} {ref['n_basis']:4d} AOs  alpha_D {ref['alpha_D']:8.4f}"
              f"           ratio {ref['ratio']:.5f}           {ref['seconds']:6.1f} s", flush=True)
        rows.append({"kind": kind, "name": name, "smiles": smiles, "results": results})
    print(json.dumps({"preset": args.preset, "reference_basis": args.reference_basis, "cores": args.cores,
                      "rows": rows}))


if __name__ == "__main__":
    main()
