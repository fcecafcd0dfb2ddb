"""Campaign files (YAML): what to optimise, over which pool, with which protocol.

Validated on load; an unknown key or a wrong type is a one-line :class:`ConfigError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PACKAGE_CAMPAIGNS = Path(__file__).parent / "campaigns"
DEMO_CAMPAIGN = PACKAGE_CAMPAIGNS / "demo.yaml"

MD_OBJECTIVES = ("refractive_index", "abbe_number")
Direction = Literal["maximize", "minimize"]
Strategy = Literal["ehvi-topk", "qlognehvi-greedy", "random"]


class ConfigError(ValueError):
    """A campaign or profile file that cannot be used; the message is one line."""


class OracleSettings(BaseModel):
    """Look properties up in a table instead of running MD (retrospective replays)."""

    model_config = ConfigDict(extra="forbid")
    table: Path
    id_column: str = "id"
    duration_s: tuple[float, float] = Field(
        default=(0.0, 0.0), description="simulated job duration, uniform in [low, high] seconds (uneven MD jobs)")

    @field_validator("duration_s")
    @classmethod
    def _durations(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1]:
            raise ValueError(f"duration_s must be [low, high] with 0 <= low <= high, got {list(v)}")
        return v


FailureKind = Literal["invalid_input", "qm_failed", "md_failed", "not_equilibrated", "oriented", "timeout"]
# invalid input never improves on retry; a timeout (walltime of a block) or a crashed MD usually does
DEFAULT_ATTEMPTS: dict[str, int] = {"invalid_input": 1, "qm_failed": 1, "md_failed": 2, "not_equilibrated": 1,
                                    "oriented": 1, "timeout": 3}


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    pool: Path
    objectives: dict[str, Direction]
    initial_size: int = Field(default=10, ge=1)
    batch_size: int = Field(default=10, ge=1)
    cycles: int = Field(default=20, ge=0)
    preset: str = "smoke"
    seed: int = 0
    strategy: Strategy = "ehvi-topk"
    kernel: Literal["ard", "isotropic"] = Field(
        default="ard", description="GP kernel: ard (one lengthscale per descriptor) or isotropic (the published one)")
    mode: Literal["batch", "async"] = Field(
        default="batch", description="batch: wait for the whole batch, refit, pick the next; async: keep "
                                     "`in_flight` jobs running, refit and pick one whenever one finishes")
    in_flight: int | None = Field(default=None, ge=1, description="async: jobs kept running (default batch_size)")
    retries: dict[FailureKind, int] = Field(
        default_factory=lambda: dict(DEFAULT_ATTEMPTS),
        description="attempts per failure kind; a retry resubmits the job, which resumes from its last stage")
    oracle: OracleSettings | None = None
    initial_data: list[Path] = Field(
        default_factory=list,
        description="earlier campaigns' exports (workflow export): their finished polymers train the model from "
                    "the start and count toward the initial design; pool polymers among them are not run again")
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("retries")
    @classmethod
    def _attempts(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"attempts must be at least 1, got {bad}")
        return DEFAULT_ATTEMPTS | v

    @field_validator("objectives")
    @classmethod
    def _two_objectives(cls, v: dict[str, Direction]) -> dict[str, Direction]:
        if len(v) != 2:
            raise ValueError(f"needs exactly two objectives, got {len(v)}")
        return v

    def resolve(self, base: Path) -> "Campaign":
        """Make relative paths relative to the campaign file's directory."""
        upd = {"pool": _resolve(self.pool, base), "source": base,
               "initial_data": [_resolve(p, base) for p in self.initial_data]}
        if self.oracle is not None:
            upd["oracle"] = self.oracle.model_copy(update={"table": _resolve(self.oracle.table, base)})
        return self.model_copy(update=upd)

    @property
    def maximize(self) -> list[bool]:
        return [d == "maximize" for d in self.objectives.values()]


def _resolve(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    return f"key '{loc}': {err['msg']} (got {err.get('input')!r})"


def load_yaml_mapping(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} file {path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def load_campaign(path: str | Path) -> Campaign:
    path = Path(path).expanduser().resolve()
    data = load_yaml_mapping(path, "campaign")
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"campaign file {path}: {one_line(exc)}") from None
    campaign = campaign.resolve(path.parent)
    if campaign.oracle is None:
        bad = [o for o in campaign.objectives if o not in MD_OBJECTIVES]
        if bad:
            raise ConfigError(f"campaign file {path}: key 'objectives': {bad[0]!r} is not computed by the MD job "
                              f"(choose from {', '.join(MD_OBJECTIVES)}, or use an oracle table)")
    return campaign
