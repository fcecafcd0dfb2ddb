"""The NQSV batch script (``string.Template``; filled by :class:`NQSVProvider`)."""

template_string = """#!/bin/bash
#PBS -q ${queue}
#PBS --group=${group}
#PBS -b ${nodes_per_block}
#PBS -l elapstim_req=${walltime}
#PBS -l cpunum_job=${cores_per_node}
#PBS -T ${mpi_type}
#PBS -N ${jobname}
#PBS -o ${job_stdout_path}
#PBS -e ${job_stderr_path}
${scheduler_options}

cd "$$PBS_O_WORKDIR" 2>/dev/null || true
${worker_init}

export JOBNAME="${jobname}"

(
${user_script}
)
echo $$? > "${exitcode_path}"
"""
