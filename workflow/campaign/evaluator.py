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
    """One polymer's job: the pool id, its PSMILES, its directory (absolute) and its seed."""

    polymer_id: str
    psmiles: str
    job_dir: Path
    seed: int


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
