"""Site profiles (``hpc_profiles/NAME.yaml``): where and how property jobs run, as a Parsl config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workflow.config import ConfigError, load_yaml_mapping, one_line

PROFILE_DIRS = (Path.cwd() / "hpc_profiles", Path(__file__).resolve().parent.parent / "hpc_profiles")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    scheduler: Literal["local"] = "local"
    cores_per_node: int | None = Field(default=None, ge=1, description="default: all cores of this machine")
    cores_per_job: int = Field(default=1, ge=1)
    max_blocks: int = Field(default=1, ge=1)
    worker_init: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits(self) -> "Profile":
        if self.cores_per_node is not None and self.cores_per_job > self.cores_per_node:
            raise ValueError(f"cores_per_job={self.cores_per_job} exceeds cores_per_node={self.cores_per_node}")
        return self

    @property
    def node_cores(self) -> int:
        return self.cores_per_node or os.cpu_count() or 1

    @property
    def workers_per_node(self) -> int:
        return max(1, self.node_cores // self.cores_per_job)

    def parsl_config(self, run_dir: Path):
        """A Parsl ``Config`` with one HighThroughputExecutor for the property jobs."""
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider

        provider = LocalProvider(init_blocks=1, min_blocks=0, max_blocks=self.max_blocks,
                                 worker_init="\n".join(self.worker_init))
        executor = HighThroughputExecutor(
            label=f"polyscout-{self.name}",
            cores_per_worker=self.cores_per_job,
            max_workers_per_node=self.workers_per_node,
            provider=provider,
        )
        return Config(executors=[executor], run_dir=str(run_dir), strategy="simple", initialize_logging=True)


def find_profile(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    for d in PROFILE_DIRS:
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({f.stem for d in PROFILE_DIRS if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"unknown profile {name_or_path!r}: known profiles are {', '.join(known) or 'none'}")


def load_profile(name_or_path: str) -> Profile:
    path = find_profile(name_or_path)
    data = load_yaml_mapping(path, "profile")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"profile file {path}: {one_line(exc)}") from None
