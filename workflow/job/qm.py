"""Quantum chemistry of the repeat unit: CH3-capped geometry and its polarizability (PySCF).

The repeat unit's polarizability is the CH3-capped unit's minus ethane's (the caps and their bond;
see :func:`repeat_unit_polarizability`).

The frequency-dependent polarizability solves the linear-response (RPA/TDDFT) equations

    [ A  B ] [X]       [1  0] [X]   [ V]
    [ B  A ] [Y] - w * [0 -1] [Y] = [ V]

with PySCF's own response operator (``TDDFT.gen_vind``) and Krylov solver (``lib.krylov``),
preconditioned by the orbital-energy differences shifted by ``w``; alpha(w) = 2 V.(X + Y).
The three directions of one frequency share one Krylov subspace, and each frequency starts from
the previous one's solution. This gives pyscf-properties' numbers (tested) at a fraction of
the cost of its ``newton_krylov`` path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from workflow.job.optics import BOHR3_TO_ANG3, photon_energy_hartree
from workflow.job.presets import WAVELENGTHS_NM, QMSettings


class QMError(RuntimeError):
    """The SCF or the response solve did not converge."""


def capped_repeat_unit(psmiles: str) -> Chem.Mol:
    """The repeat unit with both links (``*``) replaced by methyl groups, with hydrogens."""
    mol = Chem.MolFromSmiles(psmiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse {psmiles!r}")
    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() == 0:
            atom.SetAtomicNum(6)
            atom.SetIsotope(0)
            atom.SetNoImplicit(False)
    capped = rw.GetMol()
    Chem.SanitizeMol(capped)
    return Chem.AddHs(capped)


def lowest_conformer(mol: Chem.Mol, n_conformers: int, seed: int = 42) -> Chem.Mol:
    """ETKDG conformers relaxed with MMFF94 (UFF where MMFF has no types); keep the lowest."""
    mol = Chem.Mol(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=max(1, n_conformers), params=params))
    if not cids:
        params.useRandomCoords = True
        cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=max(1, n_conformers), params=params))
    if not cids:
        raise ValueError("RDKit could not embed a 3-D conformer")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        results = AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    else:
        results = AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)
    energies = [e for _, e in results]
    best = cids[int(np.argmin(energies))]
    out = Chem.Mol(mol, confId=best)
    out.RemoveAllConformers()
    out.AddConformer(Chem.Conformer(mol.GetConformer(best)), assignId=True)
    return out


@dataclass(frozen=True)
class PolarizabilityResult:
    static_ang3: float
    dynamic_ang3: dict[float, float]  # wavelength nm -> isotropic alpha, A^3
    scf_energy_hartree: float
    n_basis: int
    response_iterations: int
    geometry_opt_steps: int = 0  # 0: the MMFF geometry was used
    capped_static_ang3: float = 0.0  # the CH3-capped unit's own static alpha
    cap_static_ang3: float = 0.0  # ethane's alpha, subtracted
    cap_dynamic_ang3: dict[float, float] = field(default_factory=dict)  # wavelength nm -> ethane's alpha

    def as_record(self) -> dict[str, float | int]:
        rec: dict[str, float | int] = {
            "polarizability_static": self.static_ang3,
            "scf_energy_hartree": self.scf_energy_hartree,
            "qm_n_basis": self.n_basis,
            "qm_response_iterations": self.response_iterations,
            "qm_geometry_opt_steps": self.geometry_opt_steps,
            "polarizability_capped_static": self.capped_static_ang3,
            "polarizability_cap_static": self.cap_static_ang3,
        }
        for wl, a in self.cap_dynamic_ang3.items():
            rec[f"polarizability_cap_{wl:g}nm"] = a
        for wl, a in self.dynamic_ang3.items():
            rec[f"polarizability_{wl:g}nm"] = a
        return rec


def basis_per_element(symbols, settings: QMSettings, basis_name: str | None = None) -> dict[str, str]:
    """The preset's basis for each element (``basis_heavy`` where it names one, e.g. Br and I)."""
    return {el: settings.basis_heavy.get(el, basis_name or settings.basis) for el in sorted(set(symbols))}


def pyscf_molecule(mol: Chem.Mol, basis: str | dict[str, str], memory_mb: int):
    """A PySCF ``Mole`` of an RDKit molecule's conformer (its formal charge, closed shell)."""
    from pyscf import gto

    conf = mol.GetConformer()
    atoms = [(a.GetSymbol(), tuple(conf.GetAtomPosition(a.GetIdx()))) for a in mol.GetAtoms()]
    return gto.M(atom=atoms, basis=basis, charge=Chem.GetFormalCharge(mol), unit="Angstrom", verbose=0,
                 max_memory=memory_mb)


def build_scf(mol: Chem.Mol, settings: QMSettings, functional: str | None = None, basis_name: str | None = None):
    """A converged PySCF RKS object for an RDKit molecule with one conformer (the preset's method unless given)."""
    from pyscf import dft

    functional = functional or settings.functional
    basis_name = basis_name or settings.basis
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    mf = dft.RKS(pyscf_molecule(mol, basis_per_element(symbols, settings, basis_name), settings.memory_mb))
    mf.xc = functional
    mf.grids.level = settings.grid_level
    mf.max_cycle = settings.scf_max_cycles
    mf.kernel()
    if not mf.converged:
        raise QMError(f"SCF did not converge in {settings.scf_max_cycles} cycles ({functional}/{basis_name})")
    return mf


def optimize_geometry(mol: Chem.Mol, settings: QMSettings) -> tuple[Chem.Mol, int]:
    """DFT-optimised copy of ``mol`` (PySCF gradients, geomeTRIC optimiser); returns it and the steps taken."""
    from pyscf.geomopt.geometric_solver import kernel

    mf = build_scf(mol, settings, settings.opt_functional, settings.opt_basis)
    steps = [0]

    def count(_envs, steps=steps):
        steps[0] += 1

    converged, pmol = kernel(mf, assert_convergence=False, maxsteps=settings.opt_max_steps, callback=count)
    if not converged:
        raise QMError(f"geometry optimisation did not converge in {settings.opt_max_steps} steps "
                      f"({settings.opt_functional}/{settings.opt_basis})")
    out = Chem.Mol(mol)
    conf = out.GetConformer()
    for i, xyz in enumerate(pmol.atom_coords(unit="Angstrom")):
        conf.SetAtomPosition(i, [float(v) for v in xyz])
    return out, steps[0]


def response_polarizability(mf, frequencies_hartree: list[float], tol: float = 1e-5,
                            max_cycle: int = 60) -> tuple[np.ndarray, int]:
    """Polarizability tensors alpha(w) for a converged closed-shell SCF.

    Args:
        mf: converged PySCF RHF/RKS object.
        frequencies_hartree: ``f`` photon energies (0.0 for the static limit).

    Returns:
        ``f x 3 x 3`` tensors in bohr^3 (atomic units), and the Krylov iterations used.
    """
    from pyscf import lib, tdscf

    td = tdscf.TDDFT(mf) if hasattr(mf, "xc") else tdscf.TDHF(mf)
    vind, hdiag = td.gen_vind(mf)
    orbo = mf.mo_coeff[:, mf.mo_occ == 2]
    orbv = mf.mo_coeff[:, mf.mo_occ == 0]
    nov = orbo.shape[1] * orbv.shape[1]
    with mf.mol.with_common_orig(np.zeros(3)):
        r = mf.mol.intor_symmetric("int1e_r", comp=3)
    v = lib.einsum("xpq,pi,qa->xia", r, orbo, orbv).reshape(3, nov)
    e_ia = np.asarray(hdiag).ravel()[:nov]
    rhs = np.hstack([v, -v])

    tensors = []
    iterations = 0
    z_prev = None
    for w in frequencies_hartree:
        if w >= e_ia.min():
            raise QMError(f"frequency {w:.4f} Eh is above the lowest orbital gap {e_ia.min():.4f} Eh")
        diag = np.hstack([e_ia - w, -e_ia - w])

        def aop(x, diag=diag, w=w):
            x = np.asarray(x).reshape(-1, 2 * nov)
            return (np.asarray(vind(x)) - w * x) / diag - x

        counter = [0]

        def count(*_args, counter=counter):
            counter[0] += 1

        z = lib.krylov(aop, rhs / diag, x0=z_prev, tol=tol, max_cycle=max_cycle, callback=count)
        z = np.asarray(z).reshape(3, 2 * nov)
        residual = np.linalg.norm(np.asarray(vind(z)) - w * z - rhs) / np.linalg.norm(rhs)
        if not residual < 1e-3:
            raise QMError(f"response equations did not converge at w={w:.4f} Eh (residual {residual:.1e})")
        iterations += counter[0]
        z_prev = z
        tensors.append(2.0 * (z[:, :nov] + z[:, nov:]) @ v.T)
    return np.array(tensors), iterations


CAP_REFERENCE_SMILES = "CC"  # ethane: the two methyl caps and the bond that joins them


def _isotropic_polarizabilities(geometry: Chem.Mol, settings: QMSettings) -> tuple[list[float], Any, int, int]:
    """Isotropic alpha (A^3) of one molecule at 0 and the three wavelengths; ``(alphas, mf, iterations, opt_steps)``.

    Call inside ``lib.with_omp_threads``.
    """
    opt_steps = 0
    if settings.optimize_geometry:
        geometry, opt_steps = optimize_geometry(geometry, settings)
    mf = build_scf(geometry, settings)
    freqs = [0.0] + [photon_energy_hartree(wl) for wl in WAVELENGTHS_NM]
    tensors, iterations = response_polarizability(mf, freqs, tol=settings.response_tol)
    return [float(np.trace(t)) / 3.0 * BOHR3_TO_ANG3 for t in tensors], mf, iterations, opt_steps


def repeat_unit_polarizability(psmiles: str, settings: QMSettings, threads: int = 1) -> PolarizabilityResult:
    """Isotropic polarizability of the repeat unit: static and at 486.1/589.3/656.3 nm.

    Group additivity: alpha(unit) = alpha(CH3-unit-CH3) - alpha(CH3-CH3), both with the preset's
    method. The methyl caps stand for the chain's neighbours in the geometry; subtracting ethane
    removes them and leaves one link bond per unit, as in the chain. (Using the capped molecule's
    alpha with the unit's mass overestimates n_D by ~0.09 for polystyrene.)
    """
    from pyscf import lib

    geometry = lowest_conformer(capped_repeat_unit(psmiles), settings.n_conformers)
    cap = lowest_conformer(Chem.AddHs(Chem.MolFromSmiles(CAP_REFERENCE_SMILES)), settings.n_conformers)
    with lib.with_omp_threads(threads):
        capped, mf, iterations, opt_steps = _isotropic_polarizabilities(geometry, settings)
        caps, _, cap_iterations, _ = _isotropic_polarizabilities(cap, settings)
    iso = [a - b for a, b in zip(capped, caps)]
    return PolarizabilityResult(
        static_ang3=iso[0],
        dynamic_ang3={wl: a for wl, a in zip(WAVELENGTHS_NM, iso[1:])},
        scf_energy_hartree=float(mf.e_tot),
        n_basis=int(mf.mol.nao),
        response_iterations=iterations + cap_iterations,
        geometry_opt_steps=opt_steps,
        capped_static_ang3=capped[0],
        cap_static_ang3=caps[0],
        cap_dynamic_ang3={wl: a for wl, a in zip(WAVELENGTHS_NM, caps[1:])},
    )
