"""The response equations' XC kernel: PySCF's AO-basis contraction against the orbitals-on-the-grid one, side by side.

For one capped repeat unit with a preset's QM settings: one SCF, then the response equations (static limit and
the three wavelengths, the preset's residual) solved three times on the same SCF: with the XC kernel contracted
through AO density matrices (PySCF's ``nr_rks_fxc``), from the occupied and virtual orbitals' values on the grid
(``workflow.job.qm._OrbitalXCKernel``, the default: values kept for as many grid blocks as the memory allows),
and from the orbitals' values computed again at every product (none kept: the cost where memory is short).
Prints each solve's wall seconds (set-up and iterations), the seconds spent in the XC kernel, the isotropic
alphas and their largest relative difference from the first.
Ends with one JSON line.

    python benchmarks/response_kernel.py --preset quick --polymer PC --cores 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.qm_speed import POLYMERS  # noqa: E402
from workflow.job.presets import WAVELENGTHS_NM, load_preset  # noqa: E402


def solve(mf, qm, kernel_name: str) -> dict:
    """One response solve on ``mf`` with the XC kernel ``kernel_name`` (pyscf_ao | orbitals | orbitals_recomputed):
    seconds (set-up, iterations, XC kernel), the share of grid blocks whose orbital values were kept, and the
    isotropic alphas (A^3)."""
    import numpy as np

    from workflow.job.optics import BOHR3_TO_ANG3, photon_energy_hartree
    from workflow.job.qm_response import LinearResponse, _OrbitalXCKernel

    t0 = time.monotonic()
    response = LinearResponse(mf, qm.response_grid_level, qm.response_frozen_core)
    on_grid = response._df.xc_on_grid
    if kernel_name == "pyscf_ao":
        response._df.xc_on_grid = None
    elif kernel_name == "orbitals_recomputed" and on_grid is not None:
        response._df.xc_on_grid = _OrbitalXCKernel(response._df.mf, response.orbo, response.orbv, on_grid.fxc,
                                                   keep_mb=0.0)
    # the kernel this solve really used (a meta-GGA's always goes through PySCF's)
    on_grid = response._df.xc_on_grid
    used = "pyscf_ao" if on_grid is None else "orbitals"
    kept = 0.0 if on_grid is None else on_grid.kept_fraction
    kernel = response._df._xc
    xc_seconds = [0.0]

    def timed(x):
        t = time.monotonic()
        out = kernel(x)
        xc_seconds[0] += time.monotonic() - t
        return out

    response._df._xc = timed
    t1 = time.monotonic()
    tensors, iterations = response.solve([0.0] + [photon_energy_hartree(wl) for wl in WAVELENGTHS_NM],
                                         qm.response_tol)
    t2 = time.monotonic()
    return {"kernel_used": used, "kept_fraction": kept, "setup_s": t1 - t0, "solve_s": t2 - t1, "xc_s": xc_seconds[0],
            "iterations": iterations, "products": response.products,
            "alphas": [float(np.trace(t)) / 3.0 * BOHR3_TO_ANG3 for t in tensors]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--polymer", default="PC", choices=sorted(POLYMERS))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    from pyscf import lib

    from workflow.job.qm_geometry import capped_repeat_unit, lowest_conformer
    from workflow.job.qm_scf import build_scf

    qm = load_preset(args.preset).qm
    geometry = lowest_conformer(capped_repeat_unit(POLYMERS[args.polymer], qm.cap), qm.n_conformers)
    with lib.with_omp_threads(args.cores):
        t0 = time.monotonic()
        mf = build_scf(geometry, qm)
        scf_s = time.monotonic() - t0
        runs = {name: solve(mf, qm, name) for name in ("pyscf_ao", "orbitals", "orbitals_recomputed")}
    print(f"{args.polymer} capped unit, {args.preset}: {mf.mol.nao} AOs, {mf.grids.weights.size} grid points, "
          f"SCF {scf_s:.1f} s")
    for name, r in runs.items():
        print(f"  {name:19s} (kernel used: {r['kernel_used']}, orbital values kept for {r['kept_fraction']:.0%} of the "
              f"grid) set-up {r['setup_s']:6.1f} s  solve {r['solve_s']:6.1f} s (XC kernel {r['xc_s']:6.1f} s, "
              f"{r['iterations']} iterations, {r['products']} products)  alpha "
              + " ".join(f"{a:.5f}" for a in r["alphas"]))
    ref = runs["pyscf_ao"]["alphas"]
    rel = max(abs(a - b) / abs(b) for r in runs.values() for a, b in zip(r["alphas"], ref))
    total = {k: r["setup_s"] + r["solve_s"] for k, r in runs.items()}
    if runs["orbitals"]["kernel_used"] != "orbitals":
        print(f"  {qm.functional} is not an LDA or GGA: every solve used PySCF's kernel (no comparison)")
    print("  response seconds " + ", ".join(f"{k} {t:.1f} (x{total['pyscf_ao'] / t:.2f})" for k, t in total.items())
          + f"; largest relative alpha difference {rel:.1e}")
    print(json.dumps({"benchmark": "response_kernel", "preset": args.preset, "polymer": args.polymer,
                      "cores": args.cores, "n_basis": int(mf.mol.nao), "grid_points": int(mf.grids.weights.size),
                      "scf_s": scf_s, "runs": runs, "max_relative_alpha_difference": rel}))


if __name__ == "__main__":
    main()
