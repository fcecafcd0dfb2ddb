"""Optical properties from a repeat unit's polarizability and the cell's density."""

from __future__ import annotations

import math

from radonpy.core.calc import refractive_index as _radonpy_refractive_index

BOHR_TO_ANG = 0.529177210903
BOHR3_TO_ANG3 = BOHR_TO_ANG**3
HARTREE_NM = 45.56335252767
"""Photon energy in hartree is HARTREE_NM / wavelength in nm."""


def lorentz_lorenz(polarizability_ang3: float, density_g_cm3: float, mol_weight_g_mol: float) -> float:
    """Refractive index n from (n^2 - 1)/(n^2 + 2) = 4 pi N_A rho alpha / (3 M) (RadonPy's definition).

    Raises ValueError where the polarizability density is outside the physical range (phi >= 1).
    """
    if polarizability_ang3 <= 0 or density_g_cm3 <= 0 or mol_weight_g_mol <= 0:
        raise ValueError(
            f"Lorentz-Lorenz needs positive inputs, got alpha={polarizability_ang3} A^3, "
            f"rho={density_g_cm3} g/cm^3, M={mol_weight_g_mol} g/mol"
        )
    n = float(_radonpy_refractive_index(float(polarizability_ang3), float(density_g_cm3), float(mol_weight_g_mol)))
    if not math.isfinite(n):
        raise ValueError(f"Lorentz-Lorenz has no real solution for alpha={polarizability_ang3} A^3, rho={density_g_cm3}")
    return n


def abbe_number(n_d: float, n_f: float, n_c: float) -> float:
    """Abbe number V_D = (n_D - 1) / (n_F - n_C); needs normal dispersion (n_F > n_C)."""
    dispersion = n_f - n_c
    if not dispersion > 0:
        raise ValueError(f"Abbe number needs n_F > n_C (normal dispersion), got n_F={n_f}, n_C={n_c}")
    return (n_d - 1.0) / dispersion


def dispersion_ratio(alpha_f: float, alpha_d: float, alpha_c: float) -> float:
    """(alpha_F - alpha_C) / alpha_D: what the Abbe number depends on (see :func:`abbe_at_index`)."""
    return (alpha_f - alpha_c) / alpha_d


def photon_energy_hartree(wavelength_nm: float) -> float:
    return HARTREE_NM / wavelength_nm


def index_from_phi(phi: float) -> float:
    """n from the Lorentz-Lorenz ratio phi = (n^2 - 1)/(n^2 + 2) (0 <= phi < 1)."""
    if not 0 <= phi < 1:
        raise ValueError(f"Lorentz-Lorenz ratio {phi} is outside [0, 1)")
    return math.sqrt((1 + 2 * phi) / (1 - phi))


def abbe_at_index(n_d: float, alpha_f: float, alpha_d: float, alpha_c: float) -> float:
    """The Abbe number of a material with refractive index ``n_d`` whose polarizability disperses as
    ``alpha_f : alpha_d : alpha_c`` (Lorentz-Lorenz at fixed density): it tests the dispersion alone."""
    phi_d = (n_d**2 - 1) / (n_d**2 + 2)
    n_f, n_c = (index_from_phi(phi_d * a / alpha_d) for a in (alpha_f, alpha_c))
    return abbe_number(n_d, n_f, n_c)
