"""Partial charges for the MD force field.

RadonPy's published charges are RESP (HF/6-31G(d) on a DFT-optimised repeat unit) through Psi4,
which is not on PyPI. The charge models here, by preset:

- ``gasteiger``: RDKit/RadonPy Gasteiger charges (fast; they under-bind esters and acids: cells 5-8% light);
- ``resp``: RadonPy's own RESP when ``psi4`` imports; otherwise PolyScout falls back to ``esp``
  and the record says so;
- ``esp``: a Merz-Kollman electrostatic-potential fit computed with PySCF: the SCF's potential on
  points of four shells (1.4, 1.6, 1.8 and 2.0 x the van der Waals radii) around the repeat unit,
  fitted by least squares with the total charge fixed. It is RESP without RESP's hyperbolic
  restraint (which mainly tames buried carbons), at the force-field geometry RadonPy embedded.

The molecule is RadonPy's monomer: the repeat unit with its two links as hydrogens (isotope 3),
exactly what RadonPy's RESP is computed on; when chains are built RadonPy moves each link's
charge onto the atom it bonds to, so every repeat unit stays neutral.
"""

from __future__ import annotations

import numpy as np

from workflow.job.failures import PhysicsError

BOHR_PER_ANG = 1.0 / 0.52917721092
# Merz-Kollman van der Waals radii (angstrom); elements without one use 2.0
MK_RADII = {"H": 1.2, "C": 1.5, "N": 1.5, "O": 1.4, "F": 1.35, "P": 1.8, "S": 1.75, "Cl": 1.7, "Br": 1.85, "I": 1.98}
MK_SHELLS = (1.4, 1.6, 1.8, 2.0)


class ChargeError(PhysicsError):
    """The charge calculation failed (SCF not converged, RESP failed)."""


def psi4_available() -> bool:
    try:
        import psi4  # noqa: F401
    except ImportError:
        return False
    return True


def effective_charge_model(requested: str) -> str:
    """The model a job will use: ``resp`` needs Psi4 and becomes ``esp`` without it."""
    model = requested.lower()
    if model == "resp" and not psi4_available():
        return "esp"
    return model


def _sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (1 + 5**0.5) * k
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def mk_points(symbols: list[str], coords_ang: np.ndarray, density: float = 1.0) -> np.ndarray:
    """Merz-Kollman fitting points (angstrom): ``density`` points per A^2 on each shell, none inside a shell."""
    radii = np.array([MK_RADII.get(s, 2.0) for s in symbols])
    points = []
    for scale in MK_SHELLS:
        shell = radii * scale
        for i, center in enumerate(coords_ang):
            n = max(8, int(density * 4 * np.pi * shell[i] ** 2))
            p = center + shell[i] * _sphere(n)
            d = np.linalg.norm(p[:, None, :] - coords_ang[None, :, :], axis=2)
            points.append(p[np.all(d >= shell[None, :] - 1e-8, axis=1)])
    return np.concatenate(points)


def electrostatic_potential(mf, points_bohr: np.ndarray, chunk: int = 2000) -> np.ndarray:
    """The SCF's electrostatic potential (hartree/e) at points (bohr): nuclei minus electrons."""
    from pyscf import df, gto

    mol = mf.mol
    dm = mf.make_rdm1()
    coords, charges = mol.atom_coords(), mol.atom_charges()
    r = np.linalg.norm(points_bohr[:, None, :] - coords[None, :, :], axis=2)
    v = (charges[None, :] / r).sum(axis=1)
    for start in range(0, len(points_bohr), chunk):
        fake = gto.fakemol_for_charges(points_bohr[start:start + chunk])
        ints = df.incore.aux_e2(mol, fake)  # (ij|1/|r-p|), nao x nao x npts
        v[start:start + chunk] -= np.einsum("ijp,ij->p", ints, dm)
    return v


def fit_charges(points_bohr: np.ndarray, potential: np.ndarray, coords_bohr: np.ndarray,
                total_charge: float) -> np.ndarray:
    """Least-squares point charges at the nuclei reproducing ``potential``, summing to ``total_charge``."""
    inv_r = 1.0 / np.linalg.norm(points_bohr[:, None, :] - coords_bohr[None, :, :], axis=2)
    n = coords_bohr.shape[0]
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = inv_r.T @ inv_r
    a[:n, n] = a[n, :n] = 1.0
    b = np.concatenate([inv_r.T @ potential, [total_charge]])
    return np.linalg.solve(a, b)[:n]


def esp_charges(mol, method: str = "hf", basis: str = "6-31g(d)", threads: int = 1, memory_mb: int = 4000,
                density: float = 1.0, density_fit: bool = False) -> np.ndarray:
    """Merz-Kollman ESP charges of an RDKit molecule with one conformer (PySCF; see the module). With
    ``density_fit`` the SCF's Coulomb and exchange are density-fitted (charges within ~1e-3 e, tested;
    bisphenol-A polycarbonate's unit: minutes -> seconds)."""
    from pyscf import dft, lib, scf

    from workflow.job.qm_scf import pyscf_molecule

    pmol = pyscf_molecule(mol, basis, memory_mb)
    symbols = [pmol.atom_symbol(i) for i in range(pmol.natm)]
    coords = pmol.atom_coords(unit="Angstrom")
    with lib.with_omp_threads(threads):
        if method.lower() == "hf":
            mf = scf.RHF(pmol)
        else:
            mf = dft.RKS(pmol)
            mf.xc = method
        if density_fit:
            mf = mf.density_fit()
        mf.kernel()
        if not mf.converged:
            raise ChargeError(f"SCF for ESP charges did not converge ({method}/{basis})")
        points = mk_points(symbols, coords, density) * BOHR_PER_ANG
        potential = electrostatic_potential(mf, points)
    return fit_charges(points, potential, pmol.atom_coords(), float(pmol.charge))
