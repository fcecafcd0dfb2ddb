"""Why a property job gives no result: the failure kinds, and the one map from an exception to a kind.

:class:`FailureKind` is the one list of kinds (a member compares equal to its name, which the store
writes): the campaign's ``retries`` setting, the store, the stages and the reports read it. A new
kind is one member and one line of :data:`_ATTEMPTS_AND_MEANING`. :func:`failure_of` says which
kind an exception is, by its type: a job's own failure keeps its kind, an unwritable or full
filesystem is ``io_error``, an error of the physics (raised as :class:`PhysicsError` or inside one
of :data:`PHYSICS_LIBRARIES`) is the stage's kind, and anything else is a bug in PolyScout
(``internal_error``, never retried). An operating-system error is ``io_error`` unless a physics
library raised it for a reason other than the filesystem's (a missing output of a failed run).
"""

from __future__ import annotations

import errno
import traceback
from enum import StrEnum


class FailureKind(StrEnum):
    INVALID_INPUT = "invalid_input"
    QM_FAILED = "qm_failed"
    MD_FAILED = "md_failed"
    NOT_EQUILIBRATED = "not_equilibrated"
    ORIENTED = "oriented"
    INVALID_RESULT = "invalid_result"
    IO_ERROR = "io_error"
    TIMEOUT = "timeout"
    INTERNAL_ERROR = "internal_error"

    @property
    def attempts(self) -> int:
        """Default attempts in a campaign (1: never retried)."""
        return _ATTEMPTS_AND_MEANING[self][0]

    @property
    def meaning(self) -> str:
        return _ATTEMPTS_AND_MEANING[self][1]

    @property
    def infrastructure(self) -> bool:
        """The machine's or PolyScout's failure, not the polymer's: a batch failing only so stops the campaign and
        gives its polymers back; ``workflow retry`` gives these back without being named."""
        return self in (FailureKind.IO_ERROR, FailureKind.TIMEOUT, FailureKind.INTERNAL_ERROR)

    @property
    def permanent(self) -> bool:
        """The polymer's chemistry or input refused: ``workflow retry`` gives it back only when named."""
        return self in (FailureKind.INVALID_INPUT, FailureKind.INVALID_RESULT)


_ATTEMPTS_AND_MEANING: dict[FailureKind, tuple[int, str]] = {
    FailureKind.INVALID_INPUT: (1, "the PSMILES or its chemistry cannot be used; a retry cannot help"),
    FailureKind.QM_FAILED: (1, "the SCF, the response equations or the charge fit did not converge"),
    FailureKind.MD_FAILED: (2, "building the cell or a LAMMPS run failed"),
    FailureKind.NOT_EQUILIBRATED: (1, "RadonPy's equilibrium check failed after the allowed sampling runs; "
                                      "a retry grants one more run"),
    FailureKind.ORIENTED: (1, "the chains aligned (nematic order at or above the preset's limit)"),
    FailureKind.INVALID_RESULT: (1, "the job's record lacks a finite value of a campaign objective"),
    FailureKind.IO_ERROR: (2, "the job directory could not be written or read (permissions, a full disk)"),
    FailureKind.TIMEOUT: (3, "the worker or its block was lost (walltime, node failure); a retry resumes the job"),
    FailureKind.INTERNAL_ERROR: (1, "an unexpected exception in PolyScout's own code: a bug to report, not retried"),
}

DEFAULT_ATTEMPTS: dict[FailureKind, int] = {k: k.attempts for k in FailureKind}

PHYSICS_LIBRARIES: tuple[str, ...] = ("radonpy", "pyscf", "rdkit", "geometric", "lammps", "mdtraj", "numpy", "scipy")
"""Packages whose exceptions are the physics failing (a stage's own kind), not a bug of PolyScout's."""

IO_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO})
"""Operating-system errors of the filesystem itself (permissions, read-only, full, broken)."""


class PhysicsError(RuntimeError):
    """A computation of the job failed (SCF, charge fit, cell building, LAMMPS): the stage's failure kind."""


class JobFailure(Exception):
    """A property job that could not produce a result: its kind, the stage and a one-line message."""

    def __init__(self, kind: FailureKind | str, stage: str, message: str):
        kind = FailureKind(kind)  # an unknown name is a ValueError
        super().__init__(kind, stage, message)
        self.kind = kind
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind} in {self.stage}: {self.message}"


def _raised_inside(exc: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in one of ``packages``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    path = frames[-1].filename.replace("\\", "/")
    return any(f"/{p}/" in path for p in packages)


def failure_of(exc: BaseException, stage: str, physics: FailureKind) -> JobFailure:
    """The failure an exception raised in ``stage`` is; ``physics`` is the kind of the stage's computations failing."""
    if isinstance(exc, JobFailure):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    in_physics = _raised_inside(exc, PHYSICS_LIBRARIES)
    if isinstance(exc, OSError) and (exc.errno in IO_ERRNOS or not in_physics):
        return JobFailure(FailureKind.IO_ERROR, stage, message)  # a library's missing output file is its failure
    if isinstance(exc, PhysicsError) or in_physics:
        return JobFailure(physics, stage, message)
    where = traceback.extract_tb(exc.__traceback__)
    at = f" at {where[-1].filename.rsplit('/', 1)[-1]}:{where[-1].lineno}" if where else ""
    return JobFailure(FailureKind.INTERNAL_ERROR, stage, f"{message}{at} (a bug in PolyScout: please report it)")
