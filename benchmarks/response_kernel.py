"""The response equations' XC kernel: PySCF's AO-basis contraction against the orbitals-on-the-grid one, side by side.

For one capped repeat unit with a preset's QM settings: one SCF, then the response equations (static limit and
the three wavelengths, the preset's residual) solved twice on the same SCF, once with the XC kernel contracted
through AO density matrices (PySCF's ``nr_rks_fxc``) and once from the occupied and virtual orbitals' values on
the grid (``workflow.job.qm._OrbitalXCKernel``, the default). Prints each solve's wall seconds (set-up and
iterations), the seconds spent in the XC kernel, the isotropic alphas and their largest relative difference.
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


def solve(mf, qm, orbital_kernel: bool) -> dict:
    """One response solve on ``mf``: seconds (set-up, iterations, XC kernel) and isotropic alphas (A^3)."""
    import numpy as np

    from workflow.job.optics import BOHR3_TO_ANG3, photon_energy_hartree
    from workflow.job.qm import LinearResponse

    t0 = time.monotonic()
    response = LinearResponse(mf, qm.response_grid_level, qm.response_frozen_core)
    if not orbital_kernel:
        response._df.xc_on_grid = None
    # the kernel this solve really used: the orbitals' one falls back to PySCF's where their values do not fit
    used = "pyscf_ao" if response._df.xc_on_grid is None else "orbitals"
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
    return {"kernel_used": used, "setup_s": t1 - t0, "solve_s": t2 - t1, "xc_s": xc_seconds[0], "iterations": iterations,
            "products": response.products,
            "alphas": [float(np.trace(t)) / 3.0 * BOHR3_TO_ANG3 for t in tensors]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--polymer", default="PC", choices=sorted(POLYMERS))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    from pyscf import lib

    from workflow.job.qm import build_scf, capped_repeat_unit, lowest_conformer

    qm = load_preset(args.preset).qm
    geometry = lowest_conformer(capped_repeat_unit(POLYMERS[args.polymer], qm.cap), qm.n_conformers)
    with lib.with_omp_threads(args.cores):
        t0 = time.monotonic()
        mf = build_scf(geometry, qm)
        scf_s = time.monotonic() - t0
        runs = {"pyscf_ao": solve(mf, qm, False), "orbitals": solve(mf, qm, True)}
    print(f"{args.polymer} capped unit, {args.preset}: {mf.mol.nao} AOs, {mf.grids.weights.size} grid points, "
          f"SCF {scf_s:.1f} s")
    for name, r in runs.items():
        print(f"  {name:9s} (kernel used: {r['kernel_used']}) set-up {r['setup_s']:6.1f} s  solve {r['solve_s']:6.1f} s (XC kernel {r['xc_s']:6.1f} s, "
              f"{r['iterations']} iterations, {r['products']} products)  alpha "
              + " ".join(f"{a:.5f}" for a in r["alphas"]))
    ref, new = runs["pyscf_ao"]["alphas"], runs["orbitals"]["alphas"]
    rel = max(abs(a - b) / abs(b) for a, b in zip(new, ref))
    total = {k: r["setup_s"] + r["solve_s"] for k, r in runs.items()}
    if runs["orbitals"]["kernel_used"] != "orbitals":
        print("  the orbitals' values did not fit in memory: both solves used PySCF's kernel (no comparison)")
    print(f"  response seconds {total['pyscf_ao']:.1f} -> {total['orbitals']:.1f} "
          f"(x{total['pyscf_ao'] / total['orbitals']:.2f}); largest relative alpha difference {rel:.1e}")
    print(json.dumps({"benchmark": "response_kernel", "preset": args.preset, "polymer": args.polymer,
                      "cores": args.cores, "n_basis": int(mf.mol.nao), "grid_points": int(mf.grids.weights.size),
                      "scf_s": scf_s, "runs": runs, "max_relative_alpha_difference": rel}))


if __name__ == "__main__":
    main()
