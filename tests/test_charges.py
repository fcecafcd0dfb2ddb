"""MD charges: the PySCF Merz-Kollman ESP fit, and the model a preset resolves to."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from workflow.job.charges import (
    BOHR_PER_ANG,
    effective_charge_model,
    electrostatic_potential,
    esp_charges,
    fit_charges,
    mk_points,
    psi4_available,
)

pytestmark = pytest.mark.physics  # PySCF SCF runs


@pytest.fixture(scope="module")
def water():
    m = Chem.AddHs(Chem.MolFromSmiles("O"))
    AllChem.EmbedMolecule(m, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(m)
    return m


def test_water_esp_charges_are_the_textbook_merz_kollman_ones(water):
    q = esp_charges(water, "hf", "6-31g(d)")
    assert q.sum() == pytest.approx(0.0, abs=1e-10)
    assert -0.90 < q[0] < -0.70  # MK HF/6-31G(d) water: O about -0.80, H about +0.40
    assert q[1] == pytest.approx(q[2], abs=2e-3)


def test_density_fitted_esp_charges_equal_the_exact_integral_ones():
    mol = Chem.AddHs(Chem.MolFromSmiles("COC(C)=O"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    AllChem.MMFFOptimizeMolecule(mol)
    exact = esp_charges(mol, "hf", "6-31g(d)")
    fitted = esp_charges(mol, "hf", "6-31g(d)", density_fit=True)
    assert np.abs(fitted - exact).max() < 2e-3 and np.abs(exact).max() > 0.3
    assert not np.allclose(fitted, exact, atol=1e-8)  # a different (fitted) calculation


def test_fitted_charges_reproduce_the_potential_they_were_fitted_to(water):
    from pyscf import gto, scf

    conf = water.GetConformer()
    symbols = [a.GetSymbol() for a in water.GetAtoms()]
    xyz = np.array([list(conf.GetAtomPosition(i)) for i in range(3)])
    mf = scf.RHF(gto.M(atom=list(zip(symbols, map(tuple, xyz))), basis="6-31g(d)", verbose=0)).run()
    pts = mk_points(symbols, xyz) * BOHR_PER_ANG
    v = electrostatic_potential(mf, pts)
    q = fit_charges(pts, v, mf.mol.atom_coords(), 0.0)
    model = (q[None, :] / np.linalg.norm(pts[:, None] - mf.mol.atom_coords()[None], axis=2)).sum(axis=1)
    assert np.sqrt(np.mean((model - v) ** 2)) / np.sqrt(np.mean(v**2)) < 0.2  # three charges: ~12% here
    # the fit beats Mulliken charges of the same SCF on the same points
    mull = mf.mulliken_pop(verbose=0)[1]
    mull_v = (mull[None, :] / np.linalg.norm(pts[:, None] - mf.mol.atom_coords()[None], axis=2)).sum(axis=1)
    assert np.mean((model - v) ** 2) < np.mean((mull_v - v) ** 2)
    # points lie outside every atom's 1.4 x vdW sphere
    d = np.linalg.norm(pts[:, None] / BOHR_PER_ANG - xyz[None], axis=2)
    assert (d >= 1.4 * np.array([1.4, 1.2, 1.2]) - 1e-6).all()


@pytest.mark.skipif(psi4_available(), reason="psi4 is installed: resp stays RadonPy's RESP")
def test_resp_without_psi4_becomes_esp():
    assert effective_charge_model("resp") == "esp"
    assert effective_charge_model("gasteiger") == "gasteiger"


def test_repeat_unit_with_esp_charges_is_neutral_and_keeps_its_model_when_pickled(tmp_path):
    from radonpy.core import utils

    from workflow.job.md_cell import build_monomer
    from workflow.job.presets import QMSettings

    mol = build_monomer("*CC(*)C(=O)OC", "esp", seed=1, qm=QMSettings(charge_basis="sto-3g"), threads=2)
    q = np.array([a.GetDoubleProp("AtomicCharge") for a in mol.GetAtoms()])
    assert q.sum() == pytest.approx(0.0, abs=1e-8)
    carbonyl = next(a for a in mol.GetAtoms() if a.GetSymbol() == "C" and any(
        b.GetBondTypeAsDouble() == 2 for b in a.GetBonds()))
    assert carbonyl.GetDoubleProp("AtomicCharge") > 0.3
    assert all(a.GetDoubleProp("AtomicCharge") < 0 for a in mol.GetAtoms() if a.GetSymbol() == "O")
    utils.pickle_dump(mol, str(tmp_path / "m.pickle"))
    assert utils.pickle_load(str(tmp_path / "m.pickle")).GetProp("charge_model") == "esp"
