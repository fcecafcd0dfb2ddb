"""Quantum chemistry of the repeat unit: CH3-capped geometry and its polarizability (PySCF).

The repeat unit's polarizability is the CH3-capped unit's minus ethane's (the caps and their bond;
see :func:`repeat_unit_polarizability`); ethane's is computed once per QM settings and shared.

The frequency-dependent polarizability solves the linear-response (RPA/TDDFT) equations for the
static limit and the three Fraunhofer wavelengths together (:class:`LinearResponse`: one paired
subspace for all frequencies and field directions). With density fitting (the presets' default)
the response kernel's exchange is built in the occupied-virtual block from the fitted 3-index
integrals (:class:`_DFKernel`), and the XC kernel is contracted from the orbitals' values on the
grid (:class:`_OrbitalXCKernel`), which may be coarser than the SCF's (``response_grid_level``).
Both agree with PySCF's own response functions and with pyscf-properties (tested).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from workflow.job.failures import PhysicsError
from workflow.job.optics import BOHR3_TO_ANG3, BOHR_TO_ANG, dispersion_ratio, photon_energy_hartree
from workflow.job.presets import WAVELENGTHS_NM, PolarizabilitySettings, QMSettings
from workflow.job.record import QMResult


class QMError(PhysicsError):
    """The SCF or the response solve did not converge."""


def capped_repeat_unit(psmiles: str, cap: str = "methyl") -> Chem.Mol:
    """The repeat unit with both links (``*``) replaced by methyl groups (``cap="hydrogen"``: by hydrogen atoms),
    with hydrogens."""
    mol = Chem.MolFromSmiles(psmiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse {psmiles!r}")
    if cap not in CAP_REFERENCES:
        raise ValueError(f"unknown cap {cap!r}: use one of {sorted(CAP_REFERENCES)}")
    if cap == "hydrogen" and any(b.GetBondType() != Chem.BondType.SINGLE for a in mol.GetAtoms()
                                 if a.GetAtomicNum() == 0 for b in a.GetBonds()):
        raise ValueError(f"{psmiles!r}: a link by a double or triple bond cannot take a hydrogen cap (use qm.cap methyl)")
    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() == 0:
            atom.SetAtomicNum(6 if cap == "methyl" else 1)
            atom.SetIsotope(0)
            atom.SetNoImplicit(False)
    capped = rw.GetMol()
    Chem.SanitizeMol(capped)
    # H caps become ordinary hydrogens, listed after the heavy atoms as every other hydrogen
    return Chem.AddHs(Chem.RemoveHs(capped) if cap != "methyl" else capped)


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
class QMTimings:
    """Wall seconds of the QM stage's parts (the ``geometry`` part is 0 without a DFT optimisation)."""

    conformers: float = 0.0
    geometry: float = 0.0
    scf: float = 0.0
    response: float = 0.0  # the static limit and the three wavelengths, solved together
    cap: float = 0.0  # 0 where the cached ethane result was used


@dataclass(frozen=True)
class PolarizabilityResult:
    static_ang3: float
    dynamic_ang3: dict[float, float]  # wavelength nm -> isotropic alpha, A^3
    scf_energy_hartree: float
    n_basis: int
    response_iterations: int
    geometry_opt_steps: int = 0  # 0: the MMFF geometry was used
    capped_static_ang3: float = 0.0  # the capped unit's own static alpha
    cap_static_ang3: float = 0.0  # the cap reference's (ethane's or H2's) alpha, subtracted
    cap_dynamic_ang3: dict[float, float] = field(default_factory=dict)  # wavelength nm -> the reference's alpha
    auxbasis: str = "none"  # the density-fitting basis ("none": exact integrals)
    timings: QMTimings | None = None

    @property
    def dispersion_ratio(self) -> float:
        """(alpha_F - alpha_C) / alpha_D of the repeat unit: what the Abbe number depends on."""
        return dispersion_ratio(*(self.dynamic_ang3[wl] for wl in WAVELENGTHS_NM))

    def to_result(self, functional: str, basis: str) -> QMResult:
        """The ``qm`` stage's result (the method named by the preset's ``functional`` and ``basis``)."""
        timings = self.timings or QMTimings()
        f, d, c = (self.dynamic_ang3[wl] for wl in WAVELENGTHS_NM)
        cf, cd, cc = (self.cap_dynamic_ang3.get(wl, 0.0) for wl in WAVELENGTHS_NM)
        return QMResult(
            functional=functional, basis=basis, qm_auxbasis=self.auxbasis, dispersion_ratio=self.dispersion_ratio,
            polarizability_static=self.static_ang3, polarizability_f=f, polarizability_d=d, polarizability_c=c,
            scf_energy_hartree=self.scf_energy_hartree, qm_n_basis=self.n_basis,
            qm_response_iterations=self.response_iterations, qm_geometry_opt_steps=self.geometry_opt_steps,
            polarizability_capped_static=self.capped_static_ang3, polarizability_cap_static=self.cap_static_ang3,
            polarizability_cap_f=cf, polarizability_cap_d=cd, polarizability_cap_c=cc,
            qm_seconds_conformers=timings.conformers, qm_seconds_geometry=timings.geometry,
            qm_seconds_scf=timings.scf, qm_seconds_response=timings.response, qm_seconds_cap=timings.cap)


def basis_per_element(symbols, settings: QMSettings, basis_name: str | None = None) -> dict[str, str]:
    """The preset's basis for each element (``element_basis`` where it names one, e.g. H or I). With another
    ``basis_name`` (the geometry optimisation's) only the exceptions for elements past Kr apply."""
    from pyscf.data.elements import charge

    exceptions = settings.element_basis if basis_name in (None, settings.basis) else {
        el: b for el, b in settings.element_basis.items() if charge(el) > 36}
    return {el: exceptions.get(el, basis_name or settings.basis) for el in sorted(set(symbols))}


def pyscf_molecule(mol: Chem.Mol, basis: str | dict[str, str], memory_mb: int):
    """A PySCF ``Mole`` of an RDKit molecule's conformer (its formal charge, closed shell)."""
    from pyscf import gto

    conf = mol.GetConformer()
    atoms = [(a.GetSymbol(), tuple(conf.GetAtomPosition(a.GetIdx()))) for a in mol.GetAtoms()]
    return gto.M(atom=atoms, basis=basis, ecp=def2_core_potentials(mol, basis), charge=Chem.GetFormalCharge(mol),
                 unit="Angstrom", verbose=0, max_memory=memory_mb)


def def2_core_potentials(mol: Chem.Mol, basis: str | dict[str, str]) -> dict[str, str]:
    """The def2 effective core potentials that a def2 basis assumes for the molecule's elements past Kr
    (without one the basis describes the wrong number of electrons)."""
    heavy = {a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() > 36}
    per_element = basis if isinstance(basis, dict) else {el: basis for el in heavy}
    return {el: per_element[el] for el in sorted(heavy) if per_element.get(el, "").lower().startswith("def2")}


def build_scf(mol: Chem.Mol, settings: QMSettings, functional: str | None = None, basis_name: str | None = None,
              grid_level: int | None = None):
    """A converged PySCF RKS object for an RDKit molecule with one conformer (the preset's method unless given)."""
    from pyscf import dft

    functional = functional or settings.functional
    basis_name = basis_name or settings.basis
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    mf = dft.RKS(pyscf_molecule(mol, basis_per_element(symbols, settings, basis_name), settings.memory_mb))
    mf.xc = functional
    mf.grids.level = settings.grid_level if grid_level is None else grid_level
    if settings.density_fit:
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    mf.max_cycle = settings.scf_max_cycles
    mf.conv_tol = settings.scf_conv_tol
    mf.conv_check = False  # converged by conv_tol; PySCF's extra check costs one more Fock build
    mf.kernel()
    if not mf.converged:
        raise QMError(f"SCF did not converge in {settings.scf_max_cycles} cycles ({functional}/{basis_name})")
    return mf


def auxbasis_name(mf) -> str:
    """The density-fitting basis an SCF object uses ("none" without density fitting); one name per element
    where they differ (PySCF picks a JK-fitting set for the orbital basis, an even-tempered one where none
    exists)."""
    with_df = getattr(mf, "with_df", None)
    if with_df is None:
        return "none"
    if isinstance(with_df.auxbasis, str):
        return with_df.auxbasis
    from pyscf.df.addons import make_auxbasis

    names = {el: b if isinstance(b, str) else "even-tempered" for el, b in make_auxbasis(mf.mol).items()}
    distinct = set(names.values())
    return distinct.pop() if len(distinct) == 1 else ", ".join(f"{el}: {b}" for el, b in sorted(names.items()))


def _opt_checkpoint_key(mol: Chem.Mol, settings: QMSettings) -> dict[str, Any]:
    """What a geometry optimisation's result depends on: the molecule, its start and the DFT settings."""
    conf = mol.GetConformer()
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    return {"smiles": Chem.MolToSmiles(mol), "symbols": symbols,
            "start": [round(c, 4) for i in range(mol.GetNumAtoms()) for c in conf.GetAtomPosition(i)],
            "functional": settings.opt_functional, "basis": settings.opt_basis,
            "basis_per_element": basis_per_element(symbols, settings, settings.opt_basis),
            "grid_level": _opt_grid_level(settings), "density_fit": settings.density_fit, "auxbasis": settings.auxbasis,
            "scf_conv_tol": settings.scf_conv_tol} | (
                {} if settings.opt_convergence == "geometric" else {"convergence": settings.opt_convergence})


# geomeTRIC's criteria per ``QMSettings.opt_convergence``, loosest first: (its named set of thresholds, Q-Chem's
# rule). A set's energy, rms and max gradient, rms and max displacement thresholds must all be met, or with Q-Chem's
# rule the rms gradient and either the rms displacement or the energy change.
OPT_CONVERGENCE: dict[str, tuple[str, bool]] = {"loose": ("GAU_LOOSE", True), "geometric": ("GAU", False)}


def _resumable(saved_key: dict[str, Any] | None, key: dict[str, Any]) -> bool:
    """Whether an optimisation checkpointed under ``saved_key`` can stand for (or go on into) one under ``key``: the
    same molecule, start and DFT settings, and criteria at least as tight (a tighter run's steps and its converged
    geometry serve a looser one; a looser one's converged geometry is not tight enough the other way)."""
    if saved_key is None:
        return False

    def tightness(k: dict[str, Any]) -> int:
        return list(OPT_CONVERGENCE).index(k.get("convergence", "geometric"))  # no entry: the default criteria

    rest = {name: value for name, value in saved_key.items() if name != "convergence"}
    wanted = {name: value for name, value in key.items() if name != "convergence"}
    return rest == wanted and tightness(saved_key) >= tightness(key)


def _opt_grid_level(settings: QMSettings) -> int:
    return settings.grid_level if settings.opt_grid_level is None else settings.opt_grid_level


def optimize_geometry(mol: Chem.Mol, settings: QMSettings, checkpoint: Path | None = None) -> tuple[Chem.Mol, int]:
    """DFT-optimised copy of ``mol`` (PySCF gradients, geomeTRIC optimiser); returns it and the steps taken.

    With ``checkpoint`` (a JSON file) every step's geometry is written there, and a later call for the same
    molecule, start and settings goes on from the last geometry written (a job killed at its wall time loses
    one step, not the optimisation); a finished optimisation is read back. Steps are gradient evaluations,
    counted across calls.
    """
    from pyscf.geomopt.geometric_solver import kernel

    from workflow.common.files import read_json, write_json_atomic

    key = _opt_checkpoint_key(mol, settings)
    saved = read_json(checkpoint) if checkpoint is not None else None
    saved = saved if saved is not None and _resumable(saved.get("key"), key) else None
    start = Chem.Mol(mol)
    steps = [saved["steps"] if saved else 0]
    if saved:
        _set_coordinates(start, np.asarray(saved["coords_bohr"]) * BOHR_TO_ANG)
        if saved["converged"]:
            return start, steps[0]

    def record(envs, steps=steps):
        steps[0] += 1
        if checkpoint is not None:
            write_json_atomic(checkpoint, {"key": key, "steps": steps[0], "converged": False,
                                           "energy_hartree": float(envs["energy"]),
                                           "coords_bohr": np.asarray(envs["coords"]).tolist()})

    mf = build_scf(start, settings, settings.opt_functional, settings.opt_basis, _opt_grid_level(settings))
    convergence_set, qchem_rule = OPT_CONVERGENCE[settings.opt_convergence]
    converged, pmol = kernel(mf, assert_convergence=False, maxsteps=settings.opt_max_steps, callback=record,
                             convergence_set=convergence_set, qccnv=qchem_rule)
    if not converged:
        raise QMError(f"geometry optimisation did not converge in {settings.opt_max_steps} steps "
                      f"({settings.opt_functional}/{settings.opt_basis})")
    out = Chem.Mol(mol)
    _set_coordinates(out, pmol.atom_coords(unit="Angstrom"))
    if checkpoint is not None:
        write_json_atomic(checkpoint, {"key": key, "steps": steps[0], "converged": True,
                                       "coords_bohr": pmol.atom_coords(unit="Bohr").tolist()})
    return out, steps[0]


def _set_coordinates(mol: Chem.Mol, xyz_ang: np.ndarray) -> None:
    conf = mol.GetConformer()
    for i, xyz in enumerate(xyz_ang):
        conf.SetAtomPosition(i, [float(v) for v in xyz])


def trial_densities(x: np.ndarray, orbo: np.ndarray, orbv: np.ndarray, symmetric: bool) -> np.ndarray:
    """AO densities D + D^T (symmetric) or D - D^T of ``n x occ x vir`` trial vectors, D = 2 C_v X^T C_o^T."""
    d = np.einsum("xov,pv,qo->xpq", x, orbv, orbo * 2, optimize=True)
    return d + d.transpose(0, 2, 1) if symmetric else d - d.transpose(0, 2, 1)


class LinearResponse:
    """The linear-response equations of a converged closed-shell SCF, for several frequencies at once.

    With X and Y the excitation and de-excitation amplitudes, s = (X + Y)/2 and a = (X - Y)/2 solve

        (A + B) s - w a = V,    (A - B) a = w s,    alpha(w) = 4 V.s

    (A + B) acts on symmetric densities (Coulomb, exchange, XC kernel), A - B on antisymmetric ones
    (exchange only; the orbital-energy differences for a pure functional). All frequencies and the
    three field directions share one subspace for s and one for a (Galerkin projection), grown by
    the residuals preconditioned with the orbital-energy differences; each product of the response
    operator is computed once and serves every frequency.
    """

    def __init__(self, mf, grid_level: int | None = None, frozen_core: bool = False,
                 exchange_store: str = "auto"):
        if grid_level is not None and hasattr(mf, "grids") and grid_level != mf.grids.level:
            from pyscf import dft

            mf = mf.copy()  # the XC kernel on a coarser grid than the SCF (the same orbitals)
            mf.grids = dft.gen_grid.Grids(mf.mol)
            mf.grids.level = grid_level
            mf.grids.build()
        occupied = np.flatnonzero(mf.mo_occ == 2)
        self.n_frozen = 0
        if frozen_core:  # core orbitals (1s of C/N/O/F, up to 2p of Si-Cl, ...) do not respond to the field
            from pyscf.data.elements import chemcore

            self.n_frozen = int(chemcore(mf.mol))
        active, mask_v = occupied[self.n_frozen:], mf.mo_occ == 0
        self.orbo, self.orbv = mf.mo_coeff[:, active], mf.mo_coeff[:, mask_v]
        self.nocc, self.nvir = self.orbo.shape[1], self.orbv.shape[1]
        self.e_ia = (mf.mo_energy[mask_v][None, :] - mf.mo_energy[active][:, None]).ravel()
        with mf.mol.with_common_orig(np.zeros(3)):
            r = mf.mol.intor_symmetric("int1e_r", comp=3)
        self.v = np.einsum("xpq,pi,qa->xia", r, self.orbo, self.orbv, optimize=True).reshape(3, -1)
        self._df = None
        if getattr(mf, "with_df", None) is not None:
            self._df = _DFKernel(mf, self.orbo, self.orbv, exchange_store)
        else:  # exact integrals: PySCF's response functions
            self._resp_sym = mf.gen_response(singlet=True, hermi=1)
            hybrid = hasattr(mf, "xc") and mf._numint.libxc.is_hybrid_xc(mf.xc)
            self._resp_anti = mf.gen_response(singlet=True, hermi=2) if hybrid or not hasattr(mf, "xc") else None
        self.products = 0  # response-operator products computed (one per trial vector)

    def _apply(self, vecs: np.ndarray, symmetric: bool) -> np.ndarray:
        """``(A + B) @ vecs`` (symmetric) or ``(A - B) @ vecs`` for ``n x nov`` trial vectors."""
        from pyscf import lib

        out = vecs * self.e_ia
        if self._df is not None and len(vecs):
            self.products += len(vecs)
            return out + self._df.apply(vecs.reshape(-1, self.nocc, self.nvir), symmetric).reshape(len(vecs), -1)
        resp = self._resp_sym if symmetric else self._resp_anti
        if resp is None or not len(vecs):
            return out
        v1 = np.asarray(resp(trial_densities(vecs.reshape(-1, self.nocc, self.nvir), self.orbo, self.orbv, symmetric)))
        self.products += len(vecs)
        return out + lib.einsum("xpq,qo,pv->xov", v1, self.orbo, self.orbv).reshape(len(vecs), -1)

    def solve(self, frequencies_hartree: list[float], tol: float = 1e-5,
              max_cycle: int = 40) -> tuple[np.ndarray, int]:
        """Polarizability tensors at photon energies ``w`` (hartree).

        Returns:
            ``f x 3 x 3`` tensors in bohr^3 and the iterations used; raises QMError when the residual
            (relative to the perturbation) stays above ``tol`` for ``max_cycle`` iterations.
        """
        d, v = self.e_ia, self.v
        ws = [float(w) for w in frequencies_hartree]
        if ws and max(ws) >= d.min():
            raise QMError(f"frequency {max(ws):.4f} Eh is above the lowest orbital gap {d.min():.4f} Eh")
        s_basis, a_basis = _Subspace(self, True), _Subspace(self, False)
        new_s = [d * v / (d**2 - w**2) for w in ws]
        new_a = [w * v / (d**2 - w**2) for w in ws if w]
        norm_v = np.linalg.norm(v, axis=1)
        norm_v[norm_v == 0] = 1.0  # a direction the basis cannot polarise (H2 in STO-3G across its bond): response 0
        prune = _Subspace.PRUNE
        for iteration in range(1, max_cycle + 1):
            while s_basis.extend(new_s, prune) + a_basis.extend(new_a, prune) == 0:
                if prune < 1e-10:
                    raise QMError("response equations stalled: no new direction in the residuals")
                prune *= 1e-3  # every correction lies (nearly) in the subspace: admit smaller new parts
            tensors, residuals, corrections = [], [], []
            for w in ws:
                s, _, rs, ra = self._project(s_basis, a_basis, w)
                tensors.append(4.0 * s @ v.T)
                residuals.append(np.sqrt(np.linalg.norm(rs, axis=1) ** 2 + np.linalg.norm(ra, axis=1) ** 2) / norm_v)
                det = d**2 - w**2
                corrections.append((-(d * rs + w * ra) / det, -(w * rs + d * ra) / det))
            residuals = np.array(residuals)  # frequencies x directions
            worst = float(residuals.max())
            if worst <= tol:
                return np.array(tensors), iteration
            # the subspace grows by the correction of the least converged frequency of each direction:
            # solutions are smooth in w^2, so the frequencies between are carried along
            new_s, new_a = [], []
            for direction in np.flatnonzero(residuals.max(axis=0) > tol):
                k = int(np.argmax(residuals[:, direction]))
                new_s.append(corrections[k][0][direction:direction + 1])
                if ws[k]:
                    new_a.append(corrections[k][1][direction:direction + 1])
        raise QMError(f"response equations did not converge in {max_cycle} iterations (residual {worst:.1e})")

    def _project(self, s_basis: "_Subspace", a_basis: "_Subspace", w: float):
        """The subspace solution at ``w``: ``s, a`` (3 x nov each) and their residuals."""
        bs, hs, ba, ha = s_basis.vectors, s_basis.products, a_basis.vectors, a_basis.products
        ns, na = len(bs), len(ba)
        m = np.zeros((ns + na, ns + na))
        m[:ns, :ns] = bs @ hs.T
        if na and w:
            m[ns:, ns:] = ba @ ha.T
            m[:ns, ns:] = -w * bs @ ba.T
            m[ns:, :ns] = m[:ns, ns:].T
        else:
            na = 0
            m = m[:ns, :ns]
        m = 0.5 * (m + m.T)
        rhs = np.zeros((ns + na, 3))
        rhs[:ns] = bs @ self.v.T
        c = np.linalg.solve(m, rhs)
        cs, ca = c[:ns].T, c[ns:].T
        s = cs @ bs
        a = ca @ ba if na else np.zeros_like(s)
        rs = cs @ hs - w * a - self.v
        ra = (ca @ ha if na else np.zeros_like(s)) - w * s
        return s, a, rs, ra


class _DFKernel:
    """The response kernel's occupied-virtual block for density-fitted integrals, B^P_mn = (mn|P).

    For a trial vector X (occ x vir) the density is D +- D^T with D = 2 C_v X^T C_o^T, and the
    exchange block is

        C_o^T K C_v = 2 sum_P [ B^P_ov X^T B^P_ov +- (B^P_oo X) B^P_vv ],

    so no AO-basis exchange matrix is formed (the Coulomb and XC terms only enter symmetric
    densities). ``exchange_store`` says where B^P_vv comes from:

    - ``"mo"``: transformed once and kept in single precision (naux*nvir^2*4 bytes per exchange
      kernel); the cost per vector is naux*nocc*nvir^2. Single precision changes alpha by ~1e-8
      relative (tested), far below the response tolerance.
    - ``"ao"``: X B^P_vv = R^T B^P C_v (R = C_v X^T) from the AO tensors at every product
      (naux*nao^2*nocc per vector; the AO tensors kept where they fit in half of ``max_memory``,
      else recomputed).
    - ``"auto"``: ``"mo"`` where its store fits in 80% of what the SCF's ``max_memory`` leaves free.
    """

    def __init__(self, mf, orbo: np.ndarray, orbv: np.ndarray, exchange_store: str = "auto"):
        from pyscf import lib

        self.mf, self.orbo, self.orbv = mf, orbo, orbv
        self.xc_on_grid = None
        if hasattr(mf, "xc"):
            ni = mf._numint
            omega, alpha, hyb = ni.rsh_and_hybrid_coeff(mf.xc, mf.mol.spin)
            self.xc_kernel = ni.cache_xc_kernel(mf.mol, mf.grids, mf.xc, mf.mo_coeff, mf.mo_occ, 1)
            fxc = self.xc_kernel[2]
            if _OrbitalXCKernel.handles(ni._xc_type(mf.xc)):
                # the singlet kernel, halved as PySCF's nr_rks_fxc_st is given it (see ``_xc``); the orbitals'
                # values kept in up to a quarter of what the SCF's max_memory leaves free
                keep_mb = 0.25 * max(mf.max_memory - lib.current_memory()[0], 0.0)
                self.xc_on_grid = _OrbitalXCKernel(mf, orbo, orbv, 0.5 * (fxc[0, :, 0] + fxc[0, :, 1]), keep_mb)
        else:  # Hartree-Fock
            omega, alpha, hyb = 0.0, 0.0, 1.0
            self.xc_kernel = None
        # exchange kernels: (coefficient, range-separation omega; 0 for the full Coulomb operator)
        if omega == 0:
            self.exchange = [(hyb, 0.0)] if hyb else []
        elif alpha == 0:
            self.exchange = [(hyb, -omega)]
        elif hyb == 0:
            self.exchange = [(alpha, omega)]
        else:
            self.exchange = [(hyb, 0.0), (alpha - hyb, omega)]
        nvir = orbv.shape[1]
        naux = mf.with_df.get_naoaux()
        if exchange_store == "auto":
            mo_mb = naux * nvir * nvir * 4 * len(self.exchange) / 1e6
            exchange_store = "mo" if mo_mb < 0.8 * (mf.max_memory - lib.current_memory()[0]) else "ao"
        if exchange_store not in ("mo", "ao"):
            raise ValueError(f"exchange_store must be 'mo', 'ao' or 'auto', not {exchange_store!r}")
        self.store = exchange_store
        self.b_ov, self.b_oo, self.b_vv = {}, {}, {}
        self._kept: dict[float, list[np.ndarray]] = {}
        self._omegas = {0.0} | {om for _, om in self.exchange}  # Coulomb (J) and each exchange kernel
        for om in self._omegas:
            ov, oo, vv = [], [], []
            keep_vv = self.store == "mo" and any(om == o for _, o in self.exchange)
            for b in self._blocks(om):
                bv = b @ orbv  # (P, nao, vir)
                ov.append(np.matmul(orbo.T, bv))
                oo.append(np.matmul(orbo.T, b @ orbo))
                if keep_vv:
                    vv.append(np.matmul(orbv.T, bv).astype(np.float32))
            self.b_ov[om], self.b_oo[om] = np.concatenate(ov), np.concatenate(oo)
            if keep_vv:
                self.b_vv[om] = vv

    def _blocks(self, omega: float):
        """The unpacked 3-index tensors ``(naux_block, nao, nao)`` of the Coulomb operator (range-separated
        by ``omega`` when not 0); kept in memory after the first pass for the ``"ao"`` store where they fit in
        half of the SCF's ``max_memory``."""
        from pyscf import lib

        if omega in self._kept:
            yield from self._kept[omega]
            return
        nao = self.mf.mol.nao
        keep = self.store == "ao" and (self.mf.with_df.get_naoaux() * nao * nao * 8 / 1e6
                                       < 0.5 * self.mf.max_memory / len(self._omegas))
        kept = []
        with contextlib.ExitStack() as stack:
            with_df = self.mf.with_df if omega == 0 else stack.enter_context(self.mf.with_df.range_coulomb(omega))
            for cderi in with_df.loop():
                b = lib.unpack_tril(cderi)
                if keep:
                    kept.append(b)
                yield b
        if keep:
            self._kept[omega] = kept

    def _exchange(self, x: np.ndarray, omega: float, sign: float) -> np.ndarray:
        """``C_o^T K[D + sign D^T] C_v`` for ``n x occ x vir`` vectors (see the class)."""
        b_ov, b_oo = self.b_ov[omega], self.b_oo[omega]
        n, nocc, nvir = x.shape
        z = np.einsum("pov,xqv->pxoq", b_ov, x, optimize=True)
        k = np.einsum("pxoq,pqv->xov", z, b_ov, optimize=True)
        if self.store == "mo":
            start = 0
            for b_vv in self.b_vv[omega]:
                nblk = b_vv.shape[0]
                w = np.einsum("poq,xqv->xopv", b_oo[start:start + nblk], x, optimize=True).astype(np.float32)
                k += sign * (w.reshape(n * nocc, nblk * nvir) @ b_vv.reshape(nblk * nvir, nvir)).reshape(n, nocc, nvir)
                start += nblk
            return 2.0 * k
        r = np.einsum("mv,xov->mxo", self.orbv, x, optimize=True).reshape(self.orbv.shape[0], n * nocc)
        start = 0
        for b in self._blocks(omega):
            nblk = b.shape[0]
            br = (b.reshape(-1, b.shape[2]) @ r).reshape(nblk, b.shape[1], n, nocc)  # B^P R, R = C_v X^T
            y = np.einsum("pmxo,mv->pxov", br, self.orbv, optimize=True)  # R^T B^P C_v = X B^P_vv
            k += sign * np.einsum("poq,pxqv->xov", b_oo[start:start + nblk], y, optimize=True)
            start += nblk
        return 2.0 * k

    def apply(self, x: np.ndarray, symmetric: bool) -> np.ndarray:
        """The kernel's part of ``(A + B) x`` (symmetric) or ``(A - B) x``; ``n x occ x vir`` in and out."""
        v1 = np.zeros_like(x)
        sign = 1.0 if symmetric else -1.0
        for coefficient, omega in self.exchange:
            # v1 = J - K/2 for the AO matrix; projected as PySCF's response vectors are (C_v^T v1 C_o)^T
            v1 -= 0.5 * coefficient * sign * self._exchange(x, omega, sign)
        if not symmetric:
            return v1
        b_ov = self.b_ov[0.0]
        rho = 4.0 * np.einsum("pov,xov->xp", b_ov, x, optimize=True)  # tr(B^P dm)
        v1 += np.einsum("pov,xp->xov", b_ov, rho, optimize=True)
        if self.xc_kernel is not None:
            v1 += self._xc(x)
        return v1

    def _xc(self, x: np.ndarray) -> np.ndarray:
        if self.xc_on_grid is not None:
            return self.xc_on_grid.apply(x)
        mf, (rho0, vxc, fxc) = self.mf, self.xc_kernel
        dm = trial_densities(x, self.orbo, self.orbv, symmetric=True)
        v = mf._numint.nr_rks_fxc_st(mf.mol, mf.grids, mf.xc, None, dm, 1, True, rho0, vxc, fxc * 0.5)
        return np.einsum("xpq,po,qv->xov", np.asarray(v), self.orbo, self.orbv, optimize=True)


class _OrbitalXCKernel:
    """The XC kernel's occupied-virtual block from the orbitals' values on the grid (LDA and GGA).

    For a trial vector X (occ x vir) the symmetric density is rho1 = 4 sum_ia X_ia phi_i phi_a (and its
    gradient for a GGA), and the kernel's block is

        K_ia = sum_g sum_x w_x(g) d_x(phi_i phi_a)(g),    w(g) = weight(g) f(g) rho1(g)

    with ``x`` the value and the three gradient components and f the singlet kernel. Working with the
    orbitals instead of the AO density matrices costs occ*vir per grid point and vector, not nao^2
    (PySCF's ``nr_rks_fxc``, the reference it is tested against). The orbitals' values (and
    gradients), (occ + vir) x 4 doubles per grid point, are computed once and kept for as many grid
    blocks as the memory allows; the other blocks' are computed again at every product.
    """

    BLOCK = 4000  # grid points per block

    def __init__(self, mf, orbo: np.ndarray, orbv: np.ndarray, fxc: np.ndarray, keep_mb: float):
        """``fxc``: the singlet kernel ``nvar x nvar x ngrids`` (nvar 1 for LDA, 4 for GGA); the orbitals' values
        of as many grid blocks as fit in ``keep_mb`` are computed once and kept, the others at every product."""
        self.mf, self.orbo, self.orbv = mf, orbo, orbv
        self.deriv = 0 if fxc.shape[0] == 1 else 1
        self.fxc, weights = fxc, mf.grids.weights
        block_mb = fxc.shape[0] * self.BLOCK * (orbo.shape[1] + orbv.shape[1]) * 8 / 1e6
        n_kept = int(keep_mb // block_mb)
        self.blocks = []  # (first point, end, the occupied and virtual orbitals' values or None)
        for number, p0 in enumerate(range(0, weights.size, self.BLOCK)):
            p1 = min(p0 + self.BLOCK, weights.size)
            self.blocks.append((p0, p1, self._orbitals(p0, p1) if number < n_kept else None))
        self.kept_fraction = sum(b[2] is not None for b in self.blocks) / max(len(self.blocks), 1)

    def _orbitals(self, p0: int, p1: int) -> tuple[np.ndarray, np.ndarray]:
        """The active occupied and the virtual orbitals' values (and gradients) at grid points ``p0:p1``:
        ``nvar x points x occ`` and ``nvar x points x vir``."""
        ni, coords = self.mf._numint, self.mf.grids.coords[p0:p1]
        ao = np.asarray(ni.eval_ao(self.mf.mol, coords, deriv=self.deriv)).reshape(self.deriv * 3 + 1, p1 - p0, -1)
        return ao @ self.orbo, ao @ self.orbv

    @staticmethod
    def handles(xc_type: str) -> bool:
        """LDA and GGA kernels (a meta-GGA's goes through PySCF's ``nr_rks_fxc``)."""
        return xc_type in ("LDA", "GGA")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``n x occ x vir`` vectors in, the kernel's ``n x occ x vir`` block out."""
        out = np.zeros_like(x)
        for p0, p1, kept in self.blocks:
            phi_o, phi_v = kept if kept is not None else self._orbitals(p0, p1)
            f = self.fxc[:, :, p0:p1] * self.mf.grids.weights[p0:p1]
            t = np.einsum("xgv,nov->nxgo", phi_v, x, optimize=True)  # sum_a X_ia d_x phi_a
            rho1 = np.empty((len(x), len(f), phi_o.shape[1]))
            rho1[:, 0] = 4.0 * np.einsum("go,ngo->ng", phi_o[0], t[:, 0])
            for k in range(1, len(f)):  # the gradient of phi_i phi_a
                rho1[:, k] = 4.0 * (np.einsum("go,ngo->ng", phi_o[k], t[:, 0])
                                    + np.einsum("go,ngo->ng", phi_o[0], t[:, k]))
            wv = np.einsum("nyg,xyg->nxg", rho1, f)
            u = np.empty_like(t)  # d_x(phi_i phi_a) w_x, sorted by which factor carries the derivative
            u[:, 0] = np.einsum("nxg,xgo->ngo", wv, phi_o)
            for k in range(1, len(f)):
                u[:, k] = wv[:, k, :, None] * phi_o[0]
            out += np.einsum("nxgo,xgv->nov", u, phi_v, optimize=True)
        return out


class _Subspace:
    """Orthonormal trial vectors and the response operator's products with them."""

    PRUNE = 1e-3  # a normalised candidate adding less than this new direction is left out

    def __init__(self, response: LinearResponse, symmetric: bool):
        self.response, self.symmetric = response, symmetric
        n = response.nocc * response.nvir
        self.vectors, self.products = np.zeros((0, n)), np.zeros((0, n))

    def extend(self, candidates: list[np.ndarray], prune: float = PRUNE) -> int:
        """Add the new directions of ``candidates`` (normalised parts below ``prune`` left out); returns how many."""
        if not candidates:
            return 0
        c = np.concatenate(candidates)
        norms = np.linalg.norm(c, axis=1, keepdims=True)
        c = c[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
        for _ in range(2):  # Gram-Schmidt against the basis, twice for stability
            c -= (c @ self.vectors.T) @ self.vectors
        _, sv, vt = np.linalg.svd(c, full_matrices=False)
        new = vt[sv > prune]
        if not len(new):
            return 0
        new -= (new @ self.vectors.T) @ self.vectors
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        self.vectors = np.concatenate([self.vectors, new])
        self.products = np.concatenate([self.products, self.response._apply(new, self.symmetric)])
        return len(new)


def response_polarizability(mf, frequencies_hartree: list[float], tol: float = 1e-5,
                            max_cycle: int = 40) -> tuple[np.ndarray, int]:
    """Polarizability tensors alpha(w) for a converged closed-shell SCF (see :class:`LinearResponse`).

    Args:
        mf: converged PySCF RHF/RKS object.
        frequencies_hartree: ``f`` photon energies (0.0 for the static limit).

    Returns:
        ``f x 3 x 3`` tensors in bohr^3 (atomic units), and the iterations used.
    """
    return LinearResponse(mf).solve(frequencies_hartree, tol, max_cycle)


# the molecule a cap's contribution is taken from: the two caps and the bond that joins them (name, SMILES)
CAP_REFERENCES = {"methyl": ("ethane", "CC"), "hydrogen": ("h2", "[H][H]")}


def isotropic_polarizabilities(geometry: Chem.Mol, settings: QMSettings, opt_checkpoint: Path | None = None
                                ) -> tuple[list[float], Any, int, int, QMTimings]:
    """Isotropic alpha (A^3) of one molecule at 0 and the three wavelengths (``opt_checkpoint``: see
    :func:`optimize_geometry`).

    Returns ``(alphas, mf, iterations, opt_steps, timings)``; call inside ``lib.with_omp_threads``.
    """
    t0 = time.monotonic()
    opt_steps = 0
    if settings.optimize_geometry:
        geometry, opt_steps = optimize_geometry(geometry, settings, opt_checkpoint)
    t1 = time.monotonic()
    mf = build_scf(geometry, settings)
    t2 = time.monotonic()
    response = LinearResponse(mf, settings.response_grid_level, settings.response_frozen_core)
    tensors, iterations = response.solve([0.0] + [photon_energy_hartree(wl) for wl in WAVELENGTHS_NM],
                                         settings.response_tol)
    alphas = [float(np.trace(t)) / 3.0 * BOHR3_TO_ANG3 for t in tensors]
    t3 = time.monotonic()
    return alphas, mf, iterations, opt_steps, QMTimings(geometry=t1 - t0, scf=t2 - t1, response=t3 - t2)


def cap_polarizabilities(settings: QMSettings, threads: int = 1,
                         cache_dir: Path | None = None) -> tuple[list[float], int, float]:
    """The cap reference's (ethane's, or H2's for hydrogen caps) isotropic alpha (A^3) at 0 and the three
    wavelengths, with the preset's method.

    Computed once per polarizability settings where ``cache_dir`` is given, under the job's one caching rule
    (:class:`workflow.job.cache.StepCache`, keyed by the molecule and the
    :class:`~workflow.job.presets.PolarizabilitySettings`). Returns ``(alphas, response iterations, seconds)``;
    0 iterations and 0 seconds when read back.
    """
    from pyscf import lib

    from workflow.common.files import read_json, write_json_atomic
    from workflow.job.cache import StepCache, step_key

    name, smiles = CAP_REFERENCES[settings.cap]
    key = step_key("cap", {"molecule": smiles, "settings": settings.part(PolarizabilitySettings)})
    step, output = f"{name}-{key[:16]}", f"{name}-{key[:16]}.json"
    cache = StepCache(Path(cache_dir)) if cache_dir is not None else None
    if cache is not None and cache.done(step, key) is not None:
        cached = read_json(cache.directory / output)
        if cached is not None:
            return [float(a) for a in cached["alphas"]], 0, 0.0
    t0 = time.monotonic()
    cap = lowest_conformer(Chem.AddHs(Chem.MolFromSmiles(smiles)), settings.n_conformers)
    with lib.with_omp_threads(threads):
        alphas, _, iterations, _, _ = isotropic_polarizabilities(cap, settings)
    seconds = time.monotonic() - t0
    if cache is not None:
        cache.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache.directory / output, {"molecule": smiles, "alphas": alphas})
        cache.mark(step, key, [output], seconds)
    return alphas, iterations, seconds


def repeat_unit_polarizability(psmiles: str, settings: QMSettings, threads: int = 1,
                               cache_dir: Path | None = None, opt_checkpoint: Path | None = None
                               ) -> PolarizabilityResult:
    """Isotropic polarizability of the repeat unit: static and at 486.1/589.3/656.3 nm.

    Group additivity: alpha(unit) = alpha(CH3-unit-CH3) - alpha(CH3-CH3), both with the preset's
    method. The methyl caps stand for the chain's neighbours in the geometry; subtracting ethane
    removes them and leaves one link bond per unit, as in the chain. (Using the capped molecule's
    alpha with the unit's mass overestimates n_D by ~0.09 for polystyrene.) With ``settings.cap``
    "hydrogen": alpha(H-unit-H) - alpha(H2), two C-H bonds less an H-H bond standing for the link bond;
    measured closer to the cap-free difference alpha(capped dimer) - alpha(capped unit) (README). The reference's result is
    shared through ``cache_dir`` (see :func:`cap_polarizabilities`); the capped unit's DFT optimisation
    (where the preset asks for one) keeps its progress in ``opt_checkpoint`` (see :func:`optimize_geometry`).
    """
    from pyscf import lib

    t0 = time.monotonic()
    geometry = lowest_conformer(capped_repeat_unit(psmiles, settings.cap), settings.n_conformers)
    conformers = time.monotonic() - t0
    with lib.with_omp_threads(threads):
        capped, mf, iterations, opt_steps, timings = isotropic_polarizabilities(geometry, settings, opt_checkpoint)
    caps, cap_iterations, cap_seconds = cap_polarizabilities(settings, threads, cache_dir)
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
        auxbasis=auxbasis_name(mf),
        timings=dataclasses.replace(timings, conformers=conformers, cap=cap_seconds),
    )
