"""NEC NQSV (Osaka University SQUID) as a Parsl provider: a template, a submit, a status map.

NQSV's ``qsub`` prints ``Request 640170.sqd submitted to queue: SQUID.``; ``qstat`` prints a
table whose ``STT`` column holds the request's state; ``qdel ID`` cancels. A request that is no
longer listed by a *successful* ``qstat`` has finished: completed, or failed when the exit code
its script wrote says so. A failed or timed-out ``qstat`` changes nothing (no request is ever
marked lost because the scheduler hiccuped); ``qsub`` and ``qdel`` are retried.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from pathlib import Path

from parsl.jobs.states import JobState, JobStatus
from parsl.launchers import SingleNodeLauncher
from parsl.launchers.base import Launcher
from parsl.providers.cluster_provider import ClusterProvider
from parsl.providers.errors import SubmitException

from workflow.dispatch.providers.nqsv_template import template_string

logger = logging.getLogger(__name__)

# NQSV request states (STT column) -> Parsl job states
translate_table: dict[str, JobState] = {
    "QUE": JobState.PENDING,   # queued
    "WAT": JobState.PENDING,   # waiting for its start time
    "ARI": JobState.PENDING,   # arriving from another batch server
    "TRS": JobState.PENDING,   # being transferred
    "GQD": JobState.PENDING,   # in a group queue
    "HLD": JobState.HELD,      # held by a user or operator
    "SUS": JobState.HELD,      # suspended
    "STG": JobState.RUNNING,   # staging files
    "PRR": JobState.RUNNING,   # pre-running (nodes being set up)
    "RUN": JobState.RUNNING,
    "CHK": JobState.RUNNING,   # checkpointing
    "POR": JobState.RUNNING,   # post-running (script done, clean-up)
    "EXT": JobState.COMPLETED,  # exiting
}

SUBMITTED = re.compile(r"Request\s+(\S+)\s+submitted to queue")


def parse_qstat(stdout: str) -> dict[str, str]:
    """``qstat`` table -> {request id: STT}. Columns are found from the header line."""
    states: dict[str, str] = {}
    col = None
    for line in stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        if "STT" in fields and col is None:
            col = fields.index("STT")
            continue
        if col is None or set(line.strip()) <= {"-", " "} or len(fields) <= col:
            continue
        states[fields[0]] = fields[col]
    return states


class NQSVProvider(ClusterProvider):
    """Blocks are NQSV batch requests.

    Args:
        queue: batch queue (SQUID: ``SQUID``, ``SQUID-H``, ``SQUID-S``, ``DBG``).
        group: the group charged (``#PBS --group=``).
        nodes_per_block: nodes per request (``#PBS -b``).
        cores_per_node: ``#PBS -l cpunum_job``.
        walltime: ``HH:MM:SS`` (``#PBS -l elapstim_req``).
        mpi_type: ``intmpi`` or ``openmpi`` (``#PBS -T``).
        scheduler_options: extra ``#PBS`` lines.
        worker_init: shell lines run before the workers start.
        retries: attempts for ``qsub``/``qdel`` that fail or time out.
    """

    def __init__(self, queue: str, group: str, nodes_per_block: int = 1, cores_per_node: int = 76,
                 walltime: str = "01:00:00", mpi_type: str = "intmpi", scheduler_options: str = "",
                 worker_init: str = "", init_blocks: int = 1, min_blocks: int = 0, max_blocks: int = 1,
                 parallelism: float = 1, launcher: Launcher | None = None, cmd_timeout: int = 60,
                 retries: int = 3, retry_wait_s: float = 5.0):
        super().__init__("nqsv", nodes_per_block, init_blocks, min_blocks, max_blocks, parallelism, walltime,
                         launcher or SingleNodeLauncher(), cmd_timeout=cmd_timeout)
        self.queue, self.group = queue, group
        self.cores_per_node, self.mpi_type = cores_per_node, mpi_type
        self.scheduler_options, self.worker_init = scheduler_options, worker_init
        self.retries, self.retry_wait_s = max(1, retries), retry_wait_s

    # -- helpers -------------------------------------------------------------------------------
    def _run(self, cmd: str, attempts: int) -> tuple[int, str, str]:
        rc, out, err = -1, "", ""
        for attempt in range(1, attempts + 1):
            try:
                rc, out, err = self.execute_wait(cmd)
            except Exception as exc:  # a timeout surfaces as an exception in some Parsl versions
                rc, out, err = -1, "", f"{type(exc).__name__}: {exc}"
            if rc == 0:
                return rc, out, err
            logger.warning("%s failed (attempt %d of %d, rc %s): %s", cmd.split()[0], attempt, attempts, rc,
                           err.strip() or out.strip())
            if attempt < attempts:
                time.sleep(self.retry_wait_s)
        return rc, out, err

    def script(self, command: str, tasks_per_node: int, job_name: str, script_path: str) -> str:
        """The batch script for one block (also what ``workflow profile show --script`` prints)."""
        from string import Template

        return Template(template_string).substitute(
            jobname=job_name, queue=self.queue, group=self.group, nodes_per_block=self.nodes_per_block,
            walltime=self.walltime, cores_per_node=self.cores_per_node, mpi_type=self.mpi_type,
            scheduler_options=self.scheduler_options, worker_init=self.worker_init,
            job_stdout_path=script_path + ".stdout", job_stderr_path=script_path + ".stderr",
            exitcode_path=script_path + ".ec",
            user_script=self.launcher(command, tasks_per_node, self.nodes_per_block))

    # -- the provider interface ----------------------------------------------------------------
    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl") -> str:
        job_name = f"{job_name}.{time.time()}"
        assert self.script_dir, "Expected script_dir to be set"
        script_path = os.path.abspath(os.path.join(self.script_dir, job_name))
        Path(script_path).write_text(self.script(command, tasks_per_node, job_name, script_path))
        rc, out, err = self._run(f"qsub {shlex.quote(script_path)}", self.retries)
        match = SUBMITTED.search(out)
        if rc != 0 or match is None:
            raise SubmitException(job_name, "qsub failed or printed no request id", stdout=out, stderr=err,
                                  retcode=rc)
        job_id = match.group(1)
        self.resources[job_id] = {"job_id": job_id, "status": JobStatus(JobState.PENDING),
                                  "script_path": script_path}
        return job_id

    def _status(self) -> None:
        active = [j for j, r in self.resources.items() if not r["status"].terminal]
        if not active:
            return
        rc, out, err = self._run("qstat " + " ".join(shlex.quote(j) for j in active), 1)
        if rc != 0:  # keep the last known states: one failed qstat never marks requests lost
            return
        states = parse_qstat(out)
        for job_id in active:
            res = self.resources[job_id]
            stdout, stderr = res["script_path"] + ".stdout", res["script_path"] + ".stderr"
            stt = states.get(job_id) or next((s for k, s in states.items() if job_id.startswith(k + ".")
                                              or k.startswith(job_id)), None)
            if stt is None or translate_table.get(stt) == JobState.COMPLETED:
                state = self._finished_state(res["script_path"] + ".ec")
            else:
                state = translate_table.get(stt, JobState.UNKNOWN)
                if state == JobState.UNKNOWN:
                    logger.warning("request %s has unknown NQSV state %r", job_id, stt)
            res["status"] = JobStatus(state, stdout_path=stdout, stderr_path=stderr)

    @staticmethod
    def _finished_state(exitcode_path: str) -> JobState:
        try:
            code = int(Path(exitcode_path).read_text().strip())
        except (OSError, ValueError):
            return JobState.COMPLETED  # gone from qstat without an exit code: finished, not lost
        return JobState.COMPLETED if code == 0 else JobState.FAILED

    def cancel(self, job_ids: list[str]) -> list[bool]:
        rc, _, _ = self._run("qdel " + " ".join(shlex.quote(j) for j in job_ids), self.retries)
        for job_id in job_ids:
            if rc == 0:
                self.resources[job_id]["status"] = JobStatus(JobState.CANCELLED)
        return [rc == 0] * len(job_ids)

    @property
    def status_polling_interval(self) -> int:
        return 60
