"""Evaluators: what turns a picked polymer into a property record.

``ParslEvaluator`` runs the property job (RadonPy/LAMMPS/PySCF) as a Parsl app on the profile's
executor; ``OracleEvaluator`` looks the properties up in a table (retrospective replays).
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd

from workflow.config import Campaign, ConfigError
from workflow.job import RECORD_FILE, JobFailure, write_json_atomic
from workflow.pool import read_table
from workflow.presets import ProtocolPreset, load_preset
from workflow.profiles import Profile


class Evaluator(ABC):
    """Turns (polymer id, PSMILES, job directory) into a future of a property record."""

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def submit(self, polymer_id: str, psmiles: str, job_dir: Path, seed: int) -> Future: ...

    def close(self) -> None:
        pass


class OracleEvaluator(Evaluator):
    """Looks a polymer's properties up in a table (CSV/Parquet) instead of simulating it.

    Like a real job it writes its record to ``job_dir/record.json`` (atomically). With
    ``duration_s`` each look-up takes a random time in that range (seeded by the job), so that
    replays can simulate slow, uneven MD jobs.
    """

    def __init__(self, table: Path, id_column: str = "id", duration_s: tuple[float, float] = (0.0, 0.0)):
        from concurrent.futures import ThreadPoolExecutor

        df = read_table(Path(table), keep_text=False)
        if id_column not in df.columns:
            raise ConfigError(f"oracle table {table} has no column {id_column!r}")
        df[id_column] = df[id_column].astype(str)
        self.rows = df.set_index(id_column)
        self.duration_s = duration_s
        self._threads = ThreadPoolExecutor(max_workers=256) if duration_s[1] > 0 else None

    def _lookup(self, polymer_id: str, psmiles: str, job_dir: Path, seed: int) -> dict:
        started = time.time()
        lo, hi = self.duration_s
        if hi > 0:
            time.sleep(lo + (hi - lo) * np.random.default_rng(seed).random())
        if polymer_id not in self.rows.index:
            raise JobFailure("invalid_input", "oracle", f"id {polymer_id!r} is not in the oracle table")
        row = self.rows.loc[polymer_id]
        record = {str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        record |= {"psmiles": psmiles, "preset": "oracle", "started_at": started}
        Path(job_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(job_dir) / RECORD_FILE, record)
        return record

    def submit(self, polymer_id: str, psmiles: str, job_dir: Path, seed: int) -> Future:
        if self._threads is not None:
            return self._threads.submit(self._lookup, polymer_id, psmiles, job_dir, seed)
        fut: Future = Future()
        try:
            fut.set_result(self._lookup(polymer_id, psmiles, job_dir, seed))
        except JobFailure as exc:
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


class ParslEvaluator(Evaluator):
    """Runs property jobs as Parsl apps on the profile's executor."""

    def __init__(self, profile: Profile, preset: ProtocolPreset, run_dir: Path):
        import parsl

        self.profile, self.preset = profile, preset
        self.dfk = parsl.load(profile.parsl_config(run_dir / "parsl"))

    def submit(self, polymer_id: str, psmiles: str, job_dir: Path, seed: int) -> Future:
        return _property_job_app()(psmiles, self.preset.model_dump_json(), str(job_dir), self.profile.cores_per_job,
                                   seed, self.profile.mpi_launcher)

    def close(self) -> None:
        import parsl

        self.dfk.cleanup()
        parsl.clear()


@functools.cache
def _property_job_app():
    """The Parsl app, built on first use so that importing the engine does not import Parsl."""
    from parsl import python_app

    @python_app
    def property_job(psmiles: str, preset_json: str, job_dir: str, cores: int, seed: int, mpi_launcher: str) -> dict:
        from workflow.job import run_property_job
        from workflow.presets import ProtocolPreset

        return run_property_job(psmiles, ProtocolPreset.model_validate_json(preset_json), job_dir, cores, seed,
                                mpi_launcher)

    return property_job


def make_evaluator(campaign: Campaign, profile: Profile, run_dir: Path) -> Evaluator:
    if campaign.oracle is not None:
        return OracleEvaluator(campaign.oracle.table, campaign.oracle.id_column, campaign.oracle.duration_s)
    return ParslEvaluator(profile, load_preset(campaign.preset), run_dir)
