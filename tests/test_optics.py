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


def test_block_standard_error_against_a_hand_computation():
    import numpy as np

    from workflow.job.md_analysis import block_standard_error

    # block means 1.5, 3.5, 5.5, 7.5, 9.5: sd sqrt(10), over sqrt(5)
    assert block_standard_error(np.arange(1.0, 11.0)) == pytest.approx(math.sqrt(10) / math.sqrt(5))
    assert block_standard_error(np.arange(1.0, 13.0)) == pytest.approx(math.sqrt(10) / math.sqrt(5))  # tail left out
    # a correlated series (AR(1), phi 0.95): blocks see the correlation that sd / sqrt(n) does not
    rng = np.random.default_rng(0)
    x = np.zeros(5000)
    for i in range(1, len(x)):
        x[i] = 0.95 * x[i - 1] + rng.normal()
    assert block_standard_error(x) > 3 * x.std() / math.sqrt(len(x))
    with pytest.raises(ValueError):
        block_standard_error(np.ones(3))


def test_optics_standard_errors_follow_the_density():
    from types import SimpleNamespace

    from workflow.job.optics import abbe_number
    from workflow.job.stages import optical_properties

    qm = SimpleNamespace(dynamic=lambda: (12.2, 12.0, 11.9), polarizability_static=11.5)
    rho, sem, weight = 1.05, 0.004, 104.15
    out = optical_properties(qm, rho, weight, sem)
    n = lambda r, a: lorentz_lorenz(a, r, weight)  # noqa: E731
    assert out.refractive_index_sem == pytest.approx((n(rho + sem, 12.0) - n(rho - sem, 12.0)) / 2)
    abbe = lambda r: abbe_number(n(r, 12.0), n(r, 12.2), n(r, 11.9))  # noqa: E731
    assert out.abbe_number_sem == pytest.approx(abs(abbe(rho + sem) - abbe(rho - sem)) / 2)
    assert 0 < out.refractive_index_sem < 0.01 and out.abbe_number_sem > 0
    assert optical_properties(qm, rho, weight).refractive_index_sem == 0.0
