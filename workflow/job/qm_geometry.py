"""The QM molecule's geometry: the capped repeat unit, its lowest MMFF conformer, and the DFT optimisation
(PySCF gradients, geomeTRIC) that keeps its progress in a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from workflow.job.optics import BOHR_TO_ANG
from workflow.job.presets import QMSettings
from workflow.job.qm_scf import QMError, basis_per_element, build_scf

CAP_REFERENCES = {"methyl": ("ethane", "CC"), "hydrogen": ("h2", "[H][H]")}
"""What replaces the links in the QM molecule, and the reference molecule whose polarizability is subtracted."""


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
