"""The evaluator interface the campaign loop depends on (it owns it; :mod:`workflow.dispatch` implements it).

An evaluator turns a picked polymer into a future of its property record, says whether a job
directory already holds the job's result, prepares a job directory for a retry, and says what
kind of failure an exception is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflow.common.errors import shorten
from workflow.job.failures import FailureKind, JobFailure, failure_of


@dataclass(frozen=True)
class JobRequest:
    """One polymer's job: the pool id, its PSMILES, its directory (absolute), its seed and what it computes
    (``job``: the property job; ``qm``: its QM stage alone, a screen; ``md``: the rest, after the screen)."""

    polymer_id: str
    psmiles: str
    job_dir: Path
    seed: int
    kind: str = "job"


@dataclass(frozen=True)
class Screen:
    """What a polymer's QM stage gives a qm-first campaign: polarizabilities (A^3) at the D line, and at F and C
    where known (None in an oracle table with one polarizability), and the repeat unit's molecular weight."""

    polarizability_d: float
    mol_weight: float
    polarizability_f: float | None = None
    polarizability_c: float | None = None


class Evaluator(ABC):
    """Turns job requests into futures of property records (dicts)."""

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def submit(self, job: JobRequest) -> Future:
        """Start the job; the future's result is its record, or it raises the job's failure."""

    @abstractmethod
    def finished(self, job: JobRequest) -> dict[str, Any] | None:
        """The record this very job already wrote to its directory (while no driver listened), else None."""

    def screen(self, record: dict[str, Any]) -> Screen:
        """The QM values of a QM job's result or of a whole record (a property job's fields by default); a
        :class:`JobFailure` (``invalid_result``) where they are missing."""
        from workflow.job.record import QM_SCREEN_FIELDS

        values = {}
        for field, key in QM_SCREEN_FIELDS.items():
            try:
                values[field] = float(record[key])
            except (KeyError, TypeError, ValueError):
                raise JobFailure(FailureKind.INVALID_RESULT, "result", f"the result has no {key!r}") from None
        return Screen(**values)

    def check_pool(self, polymer_ids: list[str]) -> None:
        """Refuse (a ConfigError) a pool this evaluator cannot evaluate at all, before anything is submitted."""

    def prepare_retry(self, job: JobRequest, kind: FailureKind) -> None:
        """Called before a failed job is resubmitted after a ``kind`` failure (nothing by default)."""

    def failure(self, exc: BaseException) -> JobFailure:
        """The kind of failure an exception from a job's future is (:func:`~workflow.job.failures.failure_of` in
        stage ``dispatch``): a job's own failure keeps its kind; an unwritable or full filesystem is ``io_error``;
        anything else that escaped the job is ``internal_error``, a bug (not retried)."""
        failure = failure_of(exc, "dispatch", FailureKind.INTERNAL_ERROR)
        return JobFailure(failure.kind, failure.stage, shorten(failure.message, 300))

    def close(self) -> None:
        """Release workers and threads."""
