"""The MD stage's chemistry in RadonPy: the monomer (3-D, charges, GAFF2_mod types) and the amorphous cell of
CH3-terminated chains, each drawn from a seeded random stream."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np

from workflow.job.failures import PhysicsError
from workflow.job.presets import MDSettings, QMSettings


class MDError(PhysicsError):
    """Building the cell or running LAMMPS failed."""


def _radonpy():
    # imported lazily: RadonPy pulls in matplotlib/pandas/mdtraj at import time
    from radonpy.core import calc, const, poly, utils
    from radonpy.ff.gaff2_mod import GAFF2_mod
    from radonpy.sim import lammps
    from radonpy.sim.md import MD
    from radonpy.sim.preset import eq

    return calc, const, poly, utils, GAFF2_mod, lammps, MD, eq


def assign_charges(mol, charge_model: str, qm: QMSettings, threads: int = 1, work_dir: Path | None = None) -> str:
    """Set RadonPy's ``AtomicCharge`` on every atom by the preset's model; returns the model used."""
    from workflow.job.charges import ChargeError, effective_charge_model, esp_charges

    calc, *_ = _radonpy()
    model = effective_charge_model(charge_model)
    if model == "esp":
        for atom, q in zip(mol.GetAtoms(), esp_charges(mol, qm.charge_method, qm.charge_basis, threads, qm.memory_mb,
                                                          density_fit=qm.density_fit)):
            atom.SetDoubleProp("ESP", float(q))
            atom.SetDoubleProp("AtomicCharge", float(q))
    elif model == "resp":  # Psi4 is importable: RadonPy's own RESP (DFT optimisation, then HF/6-31G(d))
        ok = calc.assign_charges(mol, charge="RESP", opt=True, work_dir=str(work_dir or "."), omp=threads,
                                 memory=qm.memory_mb, charge_method=qm.charge_method.upper(),
                                 charge_basis=qm.charge_basis)
        if not ok:
            raise ChargeError("RadonPy's RESP charge calculation (Psi4) failed")
    else:
        calc.assign_charges(mol, charge=model)
    return model


def build_monomer(psmiles: str, charge_model: str, seed: int, qm: QMSettings | None = None, threads: int = 1,
                  work_dir: Path | None = None):
    """RadonPy monomer (links as hydrogens) with 3-D coordinates, charges and GAFF2_mod types."""
    _calc, _const, _poly, utils, GAFF2_mod, *_ = _radonpy()
    with seeded(seed), rdkit_embedding_seeded(seed):
        mol = utils.mol_from_smiles(psmiles)
    if mol is None:
        raise MDError(f"RadonPy could not build a 3-D monomer from {psmiles!r}")
    model = assign_charges(mol, charge_model, qm or QMSettings(), threads, work_dir)
    mol.SetProp("charge_model", model)
    if not GAFF2_mod().ff_assign(mol):
        raise MDError("GAFF2_mod cannot type every atom of the repeat unit")
    return mol


def build_cell(monomer, settings: MDSettings, charge_model: str, seed: int):
    """Atactic chains of ~atoms_per_chain atoms, CH3-terminated, packed at init_density.

    Returns ``(cell, n_units, rng_state)``: the random generators' state after building, from which
    the LAMMPS inputs draw their velocity seeds (:meth:`MDRunner.run`).
    """
    with seeded(seed) as end, rdkit_embedding_seeded(seed):  # the CH3 caps are embedded by RDKit too
        cell, n = _build_cell(monomer, settings, charge_model)
    return cell, n, end[0]


def _build_cell(monomer, settings: MDSettings, charge_model: str):
    calc, _const, poly, utils, GAFF2_mod, *_ = _radonpy()
    ff = GAFF2_mod()
    ter = utils.mol_from_smiles("*C")
    calc.assign_charges(ter, charge="gasteiger" if charge_model == "gasteiger" else "zero")  # CH3 caps: neutral
    n = max(2, int(poly.calc_n_from_num_atoms(monomer, settings.atoms_per_chain, terminal1=ter)))
    chain = poly.polymerize_rw(monomer, n, tacticity=settings.tacticity)
    if chain is None:
        raise MDError(f"RadonPy's random walk could not grow a chain of {n} repeat units")
    chain = poly.terminate_rw(chain, ter)
    if not ff.ff_assign(chain):
        raise MDError("GAFF2_mod cannot type the polymer chain")
    cell = poly.amorphous_cell(chain, settings.n_chains, density=settings.init_density)
    if cell is None:
        raise MDError("RadonPy could not pack the amorphous cell")
    return cell, n


@contextlib.contextmanager
def rdkit_embedding_seeded(seed: int):
    """RDKit's conformer embedding seeded for a block. RadonPy's ``mol_from_smiles`` embeds the monomer with ETKDG
    parameters it makes itself, whose ``randomSeed`` is -1 (RDKit's own generator, which neither Python's nor NumPy's
    seed reaches): the same unit came out in a different conformer in each run, its ESP charges differed by up to
    0.06 e, and the cell's density by 5%. Inside the block the ETKDG parameter factories return seeded parameters."""
    from rdkit.Chem import AllChem

    names = [n for n in ("ETKDG", "ETKDGv2", "ETKDGv3") if hasattr(AllChem, n)]
    originals = {n: getattr(AllChem, n) for n in names}

    def seeded_factory(make):
        def factory(*args):
            params = make(*args)
            params.randomSeed = int(seed) % (2**31)
            return params
        return factory

    for n in names:
        setattr(AllChem, n, seeded_factory(originals[n]))
    try:
        yield
    finally:
        for n, make in originals.items():
            setattr(AllChem, n, make)


@contextlib.contextmanager
def seeded(seed: int | None = None, state: tuple | None = None):
    """Python's and NumPy's global generators (RadonPy draws from them, LAMMPS velocity seeds included)
    seeded with ``seed`` or set to ``state`` for a block, then restored. Yields a list that holds, after
    the block, the generators' state at its end (to continue the same stream later)."""
    saved = (random.getstate(), np.random.get_state())
    if state is not None:
        random.setstate(state[0])
        np.random.set_state(state[1])
    else:
        random.seed(seed)
        np.random.seed(seed % (2**32))
    end: list = []
    try:
        yield end
    finally:
        end.append((random.getstate(), np.random.get_state()))
        random.setstate(saved[0])
        np.random.set_state(saved[1])
