"""Quantum chemistry of the repeat unit: CH3-capped geometry and its polarizability (PySCF).

The repeat unit's polarizability is the CH3-capped unit's minus ethane's (the caps and their bond;
see :func:`repeat_unit_polarizability`); ethane's is computed once per QM settings and shared.

The job's QM in four rooms: this module (the polarizability of the repeat unit, the cap reference,
the stage's result), :mod:`~workflow.job.qm_geometry` (capped unit, conformers, DFT optimisation),
:mod:`~workflow.job.qm_scf` (basis, molecule, SCF) and :mod:`~workflow.job.qm_response` (the
linear-response solver: static limit and the three Fraunhofer wavelengths together).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rdkit import Chem

from workflow.job.optics import BOHR3_TO_ANG3, dispersion_ratio, photon_energy_hartree
from workflow.job.presets import WAVELENGTHS_NM, PolarizabilitySettings, QMSettings
from workflow.job.qm_geometry import (
    CAP_REFERENCES,
    capped_repeat_unit,
    lowest_conformer,
    optimize_geometry,
)
from workflow.job.qm_response import LinearResponse
from workflow.job.qm_scf import auxbasis_name, basis_per_element, build_scf
from workflow.job.record import QMResult


@dataclass(frozen=True)
class QMTimings:
    """Wall seconds of the QM stage's parts (the ``geometry`` part is 0 without a DFT optimisation)."""

    conformers: float = 0.0
    geometry: float = 0.0
    scf: float = 0.0
    response: float = 0.0  # the static limit and the three wavelengths, solved together
    cap: float = 0.0  # 0 where the cached ethane result was used


@dataclass(frozen=True)
class QMMolecule:
    """The capped repeat unit as the QM stage computed it: what ``workflow export --qm-dataset`` writes.

    ``positions_ang``: n x 3; ``polarizability_tensors_ang3``: "static" and "486.1nm", ... -> 3 x 3.
    """

    symbols: list[str]
    positions_ang: list[list[float]]
    energy_hartree: float
    dipole_debye: list[float]
    polarizability_tensors_ang3: dict[str, list[list[float]]]
    functional: str
    basis: dict[str, str]  # element -> basis set
    grid_level: int
    response_grid_level: int
    cap: str


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
    molecule: "QMMolecule | None" = None  # the capped molecule as computed (the QM dataset's entry)

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





class Polarizabilities(NamedTuple):
    """One molecule's response: isotropic alpha (A^3) and the 3 x 3 tensors (A^3) at 0 and the three wavelengths,
    the converged SCF (``mf``: geometry, energy, dipole), response iterations, optimisation steps, timings."""

    alphas: list[float]
    mf: Any
    iterations: int
    opt_steps: int
    timings: QMTimings
    tensors: list[list[list[float]]]


def isotropic_polarizabilities(geometry: Chem.Mol, settings: QMSettings, opt_checkpoint: Path | None = None
                                ) -> Polarizabilities:
    """Isotropic alpha (A^3) of one molecule at 0 and the three wavelengths (``opt_checkpoint``: see
    :func:`optimize_geometry`); call inside ``lib.with_omp_threads``.
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
    return Polarizabilities(alphas, mf, iterations, opt_steps,
                            QMTimings(geometry=t1 - t0, scf=t2 - t1, response=t3 - t2),
                            [(np.asarray(t) * BOHR3_TO_ANG3).tolist() for t in tensors])


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
        found = isotropic_polarizabilities(cap, settings)
        alphas, iterations = found.alphas, found.iterations
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
        found = isotropic_polarizabilities(geometry, settings, opt_checkpoint)
        capped, mf, iterations, opt_steps, timings = found.alphas, found.mf, found.iterations, found.opt_steps, \
            found.timings
        dipole = mf.dip_moment(unit="Debye", verbose=0)
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
        molecule=QMMolecule(
            symbols=[mf.mol.atom_symbol(i) for i in range(mf.mol.natm)],
            positions_ang=mf.mol.atom_coords(unit="Angstrom").tolist(), energy_hartree=float(mf.e_tot),
            dipole_debye=[float(x) for x in dipole], polarizability_tensors_ang3=dict(zip(
                ["static", *(f"{wl}nm" for wl in WAVELENGTHS_NM)], found.tensors)),
            functional=settings.functional, grid_level=settings.grid_level,
            basis=basis_per_element([mf.mol.atom_symbol(i) for i in range(mf.mol.natm)], settings),
            response_grid_level=settings.response_grid_level, cap=settings.cap),
    )
