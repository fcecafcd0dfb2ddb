"""How tightly the DFT geometry must be converged for the polarizabilities: steps, time, alpha and dispersion.

    python benchmarks/opt_convergence.py [--preset full] [--polymer PS ...] [--cores 2]

For each capped repeat unit (the preset's caps and conformer search), the preset's DFT optimisation
runs first to ``loose`` criteria (``QMSettings.opt_convergence``: Gaussian's Opt=Loose thresholds
with Q-Chem's rule), then on from that geometry to geomeTRIC's default criteria (``geometric``).
At both geometries the preset's polarizabilities are computed (the cap reference is the same for
both and cancels in the differences). Prints, per polymer and criteria: gradient evaluations and
seconds of the optimisation (for ``geometric``: the loose run's plus the continuation's, so a
restart without the loose run's Hessian), the unit's alpha_D (A^3) and dispersion ratio
(alpha_F - alpha_C)/alpha_D, and their relative differences from the tight geometry's. Ends with
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.job.optics import dispersion_ratio  # noqa: E402
from workflow.job.presets import load_preset  # noqa: E402

POLYMERS = {
    "TPX": "*C(C*)CC(C)C",
    "PMMA": "*C(C*)(C(=O)OC)C",
    "PS": "*C(C*)c1ccccc1",
    "PC": "*Oc1ccc(cc1)C(c1ccc(cc1)OC(=O)*)(C)C",
    "CYTOP": "*C(F)(F)C(C1(C(F)(F)*)F)(F)OC(C1(F)F)(F)F",
}


def unit_optics(alphas: list[float], cap: list[float]) -> tuple[float, float]:
    """(alpha_D, dispersion ratio) of the unit from the capped molecule's and the cap's alphas (static, F, D, C)."""
    _, f, d, c = (a - b for a, b in zip(alphas, cap))
    return d, dispersion_ratio(f, d, c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", help="a preset with a DFT optimisation (default: full)")
    parser.add_argument("--polymer", action="append", choices=sorted(POLYMERS), help="default: TPX, PMMA, PS")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    from pyscf import lib

    from workflow.job.qm import cap_polarizabilities, isotropic_polarizabilities
    from workflow.job.qm_geometry import (
        capped_repeat_unit,
        lowest_conformer,
        optimize_geometry,
    )

    qm = load_preset(args.preset).qm
    if not qm.optimize_geometry:
        parser.error(f"preset {args.preset} has no DFT geometry optimisation")
    loose = qm.model_copy(update={"opt_convergence": "loose"})
    tight = qm.model_copy(update={"opt_convergence": "geometric"})
    at_geometry = qm.model_copy(update={"optimize_geometry": False})
    results = []
    with tempfile.TemporaryDirectory() as caps:
        cap, _, _ = cap_polarizabilities(tight, args.cores, Path(caps))
        for name in args.polymer or ["TPX", "PMMA", "PS"]:
            start = lowest_conformer(capped_repeat_unit(POLYMERS[name], qm.cap), qm.n_conformers)
            rows = []
            geometry, steps, seconds = start, 0, 0.0
            with lib.with_omp_threads(args.cores):
                # loose from the start, then on from the loose geometry to the default criteria
                for criteria, settings in (("loose", loose), ("geometric", tight)):
                    t0 = time.monotonic()
                    geometry, more = optimize_geometry(geometry, settings)
                    steps, seconds = steps + more, seconds + time.monotonic() - t0
                    alphas, _, _, _, _ = isotropic_polarizabilities(geometry, at_geometry)
                    alpha_d, ratio = unit_optics(alphas, cap)
                    rows.append({"polymer": name, "criteria": criteria, "steps": steps, "opt_s": seconds,
                                 "alpha_D": alpha_d, "dispersion_ratio": ratio})
            ref = rows[-1]
            for row in rows:
                row["alpha_D_rel"] = row["alpha_D"] / ref["alpha_D"] - 1.0
                row["ratio_rel"] = row["dispersion_ratio"] / ref["dispersion_ratio"] - 1.0
                print(f"{name:<6} {row['criteria']:<10} {row['steps']:>3} steps {row['opt_s']:7.1f} s  "
                      f"alpha_D {row['alpha_D']:.4f} A^3 ({row['alpha_D_rel']:+.4%})  "
                      f"ratio {row['dispersion_ratio']:.5f} ({row['ratio_rel']:+.3%})", flush=True)
            results.extend(rows)
    print(json.dumps({"preset": args.preset, "cores": args.cores, "results": results}))


if __name__ == "__main__":
    main()
