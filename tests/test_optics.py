import math

import pytest

from workflow.job.optics import abbe_number, lorentz_lorenz, photon_energy_hartree


def test_lorentz_lorenz_matches_hand_computation():
    # alpha = 10 A^3, rho = 1.2 g/cm^3, M = 100 g/mol
    # phi = 4 pi N_A rho alpha / (3 M) = 4*pi*6.02214076e23*1.2*10e-24/300 = 0.30270
    phi = 4 * math.pi * 6.02214076e23 * 1.2 * 10e-24 / (3 * 100)
    expected = math.sqrt((1 + 2 * phi) / (1 - phi))
    assert expected == pytest.approx(1.5173, abs=1e-4)
    assert lorentz_lorenz(10.0, 1.2, 100.0) == pytest.approx(expected, rel=1e-6)


def test_lorentz_lorenz_rejects_unphysical_inputs():
    with pytest.raises(ValueError, match="positive"):
        lorentz_lorenz(-1.0, 1.0, 100.0)
    with pytest.raises(ValueError, match="no real solution"):
        lorentz_lorenz(100.0, 2.0, 50.0)  # phi > 1


def test_abbe_number_by_hand():
    # PMMA-like: n_D 1.4918, n_F 1.4973, n_C 1.4892 -> (0.4918)/(0.0081) = 60.716
    assert abbe_number(1.4918, 1.4973, 1.4892) == pytest.approx(0.4918 / 0.0081, rel=1e-12)
    assert abbe_number(1.4918, 1.4973, 1.4892) == pytest.approx(60.716, abs=1e-3)


def test_abbe_number_needs_normal_dispersion():
    with pytest.raises(ValueError, match="n_F > n_C"):
        abbe_number(1.5, 1.49, 1.50)


def test_photon_energy_of_sodium_d_line():
    assert photon_energy_hartree(589.3) == pytest.approx(0.077318, abs=1e-5)
