"""The QM each finished job computed, as a dataset others can train on (``workflow export --qm-dataset``).

One entry per finished job: the capped repeat unit as the QM stage computed it (``qm_molecule.json``
in its directory): symbols and positions (A), the SCF energy (eV for ASE, Hartree kept), the dipole
(Debye; ASE's e*A too), the polarizability tensors (A^3, 3 x 3, static and at 486.1/589.3/656.3
nm), the method (functional, basis per element, grids, caps), the polymer's id and PSMILES, the
campaign, the preset and PolyScout's version. Written with ASE: extended XYZ (``.extxyz``/``.xyz``)
or an ASE database (``.db``), both read back by ``ase.io.read``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow.campaign.store import JobState, Store
from workflow.common.errors import ConfigError
from workflow.common.files import atomic_output, output_file, read_json
from workflow.common.versions import package_versions
from workflow.job.stages import QM_MOLECULE_FILE

FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".db": "db"}
HARTREE_EV = 27.211386245988
DEBYE_EA = 0.20819433622  # 1 Debye in e*A


@dataclass
class QMDataset:
    entries: list = field(default_factory=list)  # ase.Atoms
    missing: list[str] = field(default_factory=list)  # finished polymers whose directory has no QM molecule


def tensor_key(label: str) -> str:
    """``static`` -> ``polarizability_static``; ``486.1nm`` -> ``polarizability_486_1nm`` (extxyz-safe names)."""
    return "polarizability_" + label.replace(".", "_")


def qm_dataset(store: Store) -> QMDataset:
    """The finished jobs' QM molecules as ``ase.Atoms`` (energy and dipole on a single-point calculator)."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    campaign = store.campaign()
    version = package_versions(["polyscout"]).get("polyscout", "unknown")
    pool = {r["polymer_id"]: r for r in store.db.execute("SELECT polymer_id, smiles, canonical FROM pool")}
    presets = {r["job_id"]: r["preset"] for r in store.db.execute("SELECT job_id, preset FROM results")}
    out = QMDataset()
    for job in store.jobs(JobState.DONE):
        mol = read_json(Path(job["job_dir"]) / QM_MOLECULE_FILE)
        if mol is None:
            out.missing.append(job["polymer_id"])
            continue
        atoms = Atoms(symbols=mol["symbols"], positions=np.asarray(mol["positions_ang"]))
        dipole = np.asarray(mol["dipole_debye"])
        atoms.calc = SinglePointCalculator(atoms, energy=mol["energy_hartree"] * HARTREE_EV,
                                           dipole=dipole * DEBYE_EA)
        info = {"polymer_id": job["polymer_id"], "psmiles": pool[job["polymer_id"]]["smiles"],
                "canonical_psmiles": pool[job["polymer_id"]]["canonical"], "campaign": campaign.name,
                "preset": presets.get(job["job_id"], ""), "polyscout_version": version,
                "molecule": f"{mol['cap']}-capped repeat unit", "energy_hartree": mol["energy_hartree"],
                "dipole_debye": dipole, "functional": mol["functional"], "basis": json.dumps(mol["basis"]),
                "grid_level": mol["grid_level"], "response_grid_level": mol["response_grid_level"]}
        for label, tensor in mol["polarizability_tensors_ang3"].items():
            info[tensor_key(label)] = np.asarray(tensor).reshape(9)  # row-major 3 x 3, A^3
        atoms.info.update(info)
        out.entries.append(atoms)
    return out


def dataset_path(path: str | Path) -> Path:
    """Check a dataset path before anything is computed: a known suffix, a file (its folder is made)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--qm-dataset {path}: use a .extxyz, .xyz or .db name")
    return output_file(path, "--qm-dataset", "qm.extxyz")


def write_qm_dataset(dataset: QMDataset, path: Path) -> Path:
    """Write the dataset atomically (a reader never sees half a file)."""
    import ase.io

    with atomic_output(path) as tmp:
        if FORMATS[path.suffix.lower()] == "db":
            _write_db(dataset, tmp)
        else:
            ase.io.write(tmp, dataset.entries, format="extxyz")
    return path


def _write_db(dataset: QMDataset, path: Path) -> None:
    """An ASE SQLite database: scalars as key-value pairs (searchable), tensors and the dipole as data."""
    from ase.db import connect

    with connect(path, type="db", append=False) as db:
        for atoms in dataset.entries:
            scalars = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float))}
            arrays = {k: np.asarray(v) for k, v in atoms.info.items() if isinstance(v, np.ndarray)}
            db.write(atoms, key_value_pairs=scalars, data=arrays)
