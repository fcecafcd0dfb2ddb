"""The property job: RadonPy, LAMMPS and PySCF turn one repeat unit into a :class:`PropertyRecord`.

``stages`` walks the job's stages; ``presets`` holds every physics setting; ``qm``, ``md``,
``charges`` and ``optics`` are the physics; ``record`` and ``failures`` say what a job returns.
This package imports nothing from the campaign or dispatch packages.
"""

from workflow.job.failures import FailureKind, JobFailure
from workflow.job.record import OBJECTIVE_PROPERTIES, PropertyRecord
from workflow.job.stages import (
           JobSpec,
           finished_record,
           grant_retry,
           run_property_job,
           write_job_inputs,
)

__all__ = ["FailureKind", "OBJECTIVE_PROPERTIES", "JobFailure", "JobSpec", "PropertyRecord", "finished_record",
           "grant_retry", "run_property_job", "write_job_inputs"]
