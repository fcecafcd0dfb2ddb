"""Why a property job gives no result: the failure kinds, each with its default number of attempts.

This table is the one list of kinds: the campaign's ``retries`` setting, the store and the reports
read it. A new kind is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FailureKind:
    name: str
    attempts: int  # default attempts in a campaign (1: never retried)
    meaning: str


FAILURE_KINDS: dict[str, FailureKind] = {k.name: k for k in (
    FailureKind("invalid_input", 1, "the PSMILES or its chemistry cannot be used; a retry cannot help"),
    FailureKind("qm_failed", 1, "the SCF, the response equations or the charge fit did not converge"),
    FailureKind("md_failed", 2, "building the cell or a LAMMPS run failed"),
    FailureKind("not_equilibrated", 1, "RadonPy's equilibrium check failed after the allowed sampling runs; "
                                       "a retry grants one more run"),
    FailureKind("oriented", 1, "the chains aligned (nematic order at or above the preset's limit)"),
    FailureKind("invalid_result", 1, "the job's record lacks a finite value of a campaign objective"),
    FailureKind("io_error", 2, "the job directory could not be written or read (permissions, a full disk)"),
    FailureKind("timeout", 3, "the worker or its block was lost (walltime, node failure); a retry resumes the job"),
)}

FailureKindName = Literal[tuple(FAILURE_KINDS)]  # type: ignore[valid-type]

DEFAULT_ATTEMPTS: dict[str, int] = {k.name: k.attempts for k in FAILURE_KINDS.values()}


class JobFailure(Exception):
    """A property job that could not produce a result: its kind, the stage and a one-line message."""

    def __init__(self, kind: str, stage: str, message: str):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(kind, stage, message)
        self.kind = kind
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind} in {self.stage}: {self.message}"
