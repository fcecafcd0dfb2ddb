import numpy as np
import pytest

from workflow.job.optics import photon_energy_hartree
from workflow.job.qm import capped_repeat_unit, response_polarizability


@pytest.fixture(scope="module")
def water_scf():
    from pyscf import dft, gto

    mol = gto.M(atom="O 0 0 0; H 0 0.757 0.587; H 0 -0.757 0.587", basis="6-31g", verbose=0)
    mf = dft.RKS(mol)
    mf.xc = "b3lyp"
    mf.kernel()
    return mf


def test_response_polarizability_agrees_with_pyscf_properties(water_scf):
    from pyscf.prop.polarizability.rks import Polarizability

    w = photon_energy_hartree(589.3)
    tensors, _ = response_polarizability(water_scf, [0.0, w], tol=1e-8)
    ref = Polarizability(water_scf)
    np.testing.assert_allclose(tensors[0], ref.polarizability(), atol=1e-5)
    np.testing.assert_allclose(tensors[1], ref.polarizability_with_freq(freq=w), atol=1e-5)
    assert np.trace(tensors[1]) > np.trace(tensors[0])  # normal dispersion


def test_static_polarizability_is_the_field_derivative_of_the_dipole(water_scf):
    """Finite field: alpha_zz = d mu_z / d E_z from SCF dipoles at +-E."""
    from pyscf import dft

    mol, h = water_scf.mol, 1e-3
    mu = []
    for sign in (+1, -1):
        mf = dft.RKS(mol)
        mf.xc = "b3lyp"
        with mol.with_common_orig(np.zeros(3)):
            r = mol.intor("int1e_r", comp=3)
        hcore = mf.get_hcore()
        mf.get_hcore = lambda *a, hc=hcore, s=sign: hc + s * h * r[2]
        mf.conv_tol = 1e-11
        mf.kernel()
        dm = mf.make_rdm1()
        mu.append(-np.einsum("pq,qp->", r[2], dm))
    alpha_ff = (mu[0] - mu[1]) / (2 * h)  # +h z in the one-electron Hamiltonian is a field of strength h
    tensors, _ = response_polarizability(water_scf, [0.0], tol=1e-8)
    assert tensors[0][2, 2] == pytest.approx(alpha_ff, rel=2e-3)


def test_capped_repeat_unit_replaces_links_by_methyls():
    from rdkit import Chem

    mol = capped_repeat_unit("*CC(*)c1ccccc1")
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles("CCC(C)c1ccccc1"))


def test_dft_geometry_optimisation_moves_a_stretched_bond_back():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from workflow.job.presets import QMSettings
    from workflow.job.qm import optimize_geometry

    mol = Chem.AddHs(Chem.MolFromSmiles("O"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    conf = mol.GetConformer()
    o = conf.GetAtomPosition(0)
    h = conf.GetAtomPosition(1)
    conf.SetAtomPosition(1, o + (h - o) * (1.3 / (h - o).Length()))  # O-H stretched to 1.3 A
    settings = QMSettings(opt_functional="b3lyp", opt_basis="6-31g", grid_level=1)
    opt, steps = optimize_geometry(mol, settings)
    c = opt.GetConformer()
    r1 = (c.GetAtomPosition(1) - c.GetAtomPosition(0)).Length()
    r2 = (c.GetAtomPosition(2) - c.GetAtomPosition(0)).Length()
    assert steps >= 2 and abs(r1 - r2) < 0.01 and 0.95 < r1 < 1.00  # B3LYP/6-31G water: ~0.98 A


@pytest.mark.slow
def test_repeat_unit_polarizability_is_additive_along_the_chain():
    # the unit's alpha is the CH3-capped unit's minus ethane's: a unit written as two repeats
    # (*CCCC*) then has twice the alpha of *CC* (without the subtraction: hexane/butane ~ 1.5)
    from workflow.job.presets import load_preset
    from workflow.job.qm import repeat_unit_polarizability

    settings = load_preset("smoke").qm
    one = repeat_unit_polarizability("*CC*", settings)
    two = repeat_unit_polarizability("*CCCC*", settings)
    assert two.static_ang3 / one.static_ang3 == pytest.approx(2.0, rel=0.03)
    assert two.dynamic_ang3[589.3] / one.dynamic_ang3[589.3] == pytest.approx(2.0, rel=0.03)
    assert one.capped_static_ang3 - one.cap_static_ang3 == pytest.approx(one.static_ang3)
