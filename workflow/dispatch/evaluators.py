"""Evaluators: what turns a picked polymer into a property record (the campaign's interface, implemented).

``ParslEvaluator`` runs the property job (RadonPy/LAMMPS/PySCF) as a Parsl app on the profile's
executor; ``OracleEvaluator`` looks the properties up in a table (retrospective replays).
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workflow.campaign.config import Campaign, OracleSettings
from workflow.campaign.evaluator import Evaluator, JobRequest, Screen
from workflow.common.errors import ConfigError, shorten
from workflow.common.files import read_json, write_json_atomic
from workflow.common.tables import read_table
from workflow.dispatch.profiles import Profile
from workflow.job import JobFailure, JobSpec, finished_record, grant_retry
from workflow.job.failures import FailureKind
from workflow.job.presets import ProtocolPreset
from workflow.job.stages import RECORD_FILE, SCREEN_FILE, finished_screen


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """Parsl's exceptions for work lost with its worker or block (HighThroughputExecutor)."""
    from parsl.executors.errors import BadStateException, ScalingFailed
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

    return ManagerLost, WorkerLost, BadStateException, ScalingFailed


class OracleEvaluator(Evaluator):
    """Looks a polymer's properties up in a table (CSV/Parquet) instead of simulating it.

    Like a real job it writes its record to ``job_dir/record.json`` (atomically). With
    ``duration_s`` each look-up takes a random time in that range (seeded by the job), so that
    replays can simulate slow, uneven MD jobs.
    """

    def __init__(self, settings: OracleSettings, objectives: list[str] | None = None):
        df = read_table(Path(settings.table), keep_text=False, what="oracle table", id_columns=(settings.id_column,))
        missing = [c for c in (settings.id_column, *(objectives or [])) if c not in df.columns]
        if missing:
            raise ConfigError(f"oracle table {settings.table} has no column(s) {', '.join(map(repr, missing))}")
        df[settings.id_column] = df[settings.id_column].astype(str)
        twice = df[settings.id_column][df[settings.id_column].duplicated()]
        if len(twice):
            raise ConfigError(f"oracle table {settings.table}: id {shorten(twice.iloc[0])} is on more than one row "
                              f"(row {int(twice.index[0]) + 1})")
        self.qm_columns = settings.qm_columns
        if self.qm_columns is not None:
            gone = [c for c in (self.qm_columns.polarizability, self.qm_columns.mol_weight) if c not in df.columns]
            if gone:
                raise ConfigError(f"oracle table {settings.table} has no column(s) {', '.join(map(repr, gone))} "
                                  f"(oracle.qm_columns)")
        self.rows = df.set_index(settings.id_column)
        self.table = settings.table
        self.duration_s = settings.duration_s
        self._threads = ThreadPoolExecutor(max_workers=settings.threads) if settings.duration_s[1] > 0 else None

    def check_pool(self, polymer_ids: list[str]) -> None:
        """A table that holds none of the pool's ids is the wrong table (every job would fail)."""
        if polymer_ids and not self.rows.index.isin(polymer_ids).any():
            raise ConfigError(f"oracle table {self.table}: none of the pool's {len(polymer_ids)} ids is in it (the pool "
                              f"has e.g. {shorten(polymer_ids[0])}, the table {shorten(str(self.rows.index[0]))})")

    def _lookup(self, job: JobRequest) -> dict[str, Any]:
        started = time.time()
        lo, hi = self.duration_s
        if hi > 0:
            time.sleep(lo + (hi - lo) * np.random.default_rng(job.seed).random())
        if job.polymer_id not in self.rows.index:
            raise JobFailure(FailureKind.INVALID_INPUT, "oracle", f"id {job.polymer_id!r} is not in the oracle table")
        row = self.rows.loc[job.polymer_id]
        if job.kind == "qm":  # a screen reads the QM columns only
            row = row[[self.qm_columns.polarizability, self.qm_columns.mol_weight]]
        record = {str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        record |= {"psmiles": job.psmiles, "preset": "oracle", "started_at": started,
                   "wall_seconds": time.time() - started}  # the look-up's (simulated) cost: budgets count it
        job.job_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job.job_dir / self._file(job), record)
        return record

    @staticmethod
    def _file(job: JobRequest) -> str:
        return SCREEN_FILE if job.kind == "qm" else RECORD_FILE

    def submit(self, job: JobRequest) -> Future:
        if self._threads is not None:
            return self._threads.submit(self._lookup, job)
        fut: Future = Future()
        try:
            fut.set_result(self._lookup(job))
        except Exception as exc:  # a failure of this job (an unwritable directory included), not the driver's
            fut.set_exception(exc)
        return fut

    def screen(self, record: dict[str, Any]) -> Screen:
        """The table's QM columns (one polarizability: the D line's stands for all three)."""
        cols = self.qm_columns
        try:
            return Screen(float(record[cols.polarizability]), float(record[cols.mol_weight]))
        except (KeyError, TypeError, ValueError):
            raise JobFailure(FailureKind.INVALID_RESULT, "oracle",
                             f"no {cols.polarizability!r} or {cols.mol_weight!r} in the table's row") from None

    def finished(self, job: JobRequest) -> dict[str, Any] | None:
        record = read_json(job.job_dir / self._file(job))
        if record is None or record.get("psmiles", job.psmiles) != job.psmiles:
            return None  # missing, truncated, or another polymer's
        return record

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


class ParslEvaluator(Evaluator):
    """Runs property jobs as Parsl apps on the profile's executor (Parsl starts when the campaign enters it)."""

    def __init__(self, profile: Profile, preset: ProtocolPreset, run_dir: Path):
        self.profile, self.preset, self.run_dir = profile, preset, Path(run_dir)
        self.dfk = None

    def __enter__(self) -> "ParslEvaluator":
        import signal

        import parsl

        # Parsl's interchange is a child process in the driver's process group: a terminal's Ctrl-C would kill it
        # too, and the driver's cleanup would then wait on it for ever. Started with SIGINT ignored, it keeps
        # running until the driver, stopping, shuts it down with the blocks.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.dfk = parsl.load(self.profile.parsl_config(self.run_dir / "parsl"))
        finally:
            signal.signal(signal.SIGINT, previous)
        return self

    def failure(self, exc: BaseException) -> JobFailure:
        """Parsl's lost managers and workers (a block's walltime, a node gone) are ``timeout``: retried, the job
        resuming its directory."""
        if isinstance(exc, lost_worker_errors()):
            return JobFailure(FailureKind.TIMEOUT, "dispatch", f"{type(exc).__name__}: {shorten(str(exc), 200)}")
        return super().failure(exc)

    def spec(self, job: JobRequest) -> JobSpec:
        return JobSpec(job.psmiles, self.preset, job.seed, self.profile.cores_per_job, self.profile.lammps_command(),
                       shared_dir=self.run_dir / "shared")  # ethane's polarizability, once per QM settings

    def submit(self, job: JobRequest) -> Future:
        if job.kind == "qm":
            return _qm_screen_app()(self.spec(job), str(job.job_dir))
        return _property_job_app()(self.spec(job), str(job.job_dir))

    def finished(self, job: JobRequest) -> dict[str, Any] | None:
        if job.kind == "qm":
            return finished_screen(self.spec(job), job.job_dir)
        return finished_record(self.spec(job), job.job_dir)

    def prepare_retry(self, job: JobRequest, kind: FailureKind) -> None:
        grant_retry(job.job_dir, kind)  # not_equilibrated: the job samples once more

    def close(self) -> None:
        import parsl

        if self.dfk is not None:
            self.dfk.cleanup()
            parsl.clear()
            self.dfk = None


@functools.cache
def _property_job_app():
    """The Parsl app, built on first use so that importing this module does not import Parsl."""
    from parsl import python_app

    @python_app
    def property_job(spec: JobSpec, job_dir: str) -> dict:
        from workflow.job import run_property_job

        return run_property_job(spec, job_dir)

    return property_job


@functools.cache
def _qm_screen_app():
    """The Parsl app of a QM screen (the job's QM stage and what it reads; its MD job later reads it back)."""
    from parsl import python_app

    @python_app
    def qm_screen(spec: JobSpec, job_dir: str) -> dict:
        from workflow.job.stages import run_qm_screen

        return run_qm_screen(spec, job_dir)

    return qm_screen


def make_evaluator(campaign: Campaign, profile: Profile, run_dir: Path) -> Evaluator:
    """The campaign's evaluator: its oracle table, or property jobs through Parsl on ``profile``."""
    if campaign.oracle is not None:
        return OracleEvaluator(campaign.oracle, list(campaign.objectives))
    return ParslEvaluator(profile, campaign.preset, run_dir)
