"""Campaign files (YAML): what to optimise, over which pool, with which protocol and strategy.

Validated on load; an unknown key or a wrong type is a one-line :class:`ConfigError` naming it.
Names come from their registries: objectives from the job's record
(:data:`workflow.job.record.OBJECTIVE_PROPERTIES`), strategies from
:data:`surrogate.strategies.STRATEGIES`, kernels from :data:`surrogate.kernels.KERNELS`, failure kinds
from :class:`workflow.job.failures.FailureKind`. The preset is resolved here, once, relative to
the campaign file, and travels as the typed model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from surrogate.kernels import KERNELS
from surrogate.objectives import Objectives
from surrogate.strategies import QLogNEHVIGreedy, StrategySettings
from workflow.common.errors import ConfigError, load_yaml_mapping, one_line
from workflow.common.files import shipped_dir
from workflow.job.failures import DEFAULT_ATTEMPTS, FailureKind
from workflow.job.presets import ProtocolPreset, load_preset
from workflow.job.record import OBJECTIVE_PROPERTIES

PACKAGE_CAMPAIGNS = Path(__file__).parent / "campaigns"
DEMO_CAMPAIGN = PACKAGE_CAMPAIGNS / "demo.yaml"

Direction = Literal["maximize", "minimize"]
KernelName = Literal[tuple(KERNELS)]  # type: ignore[valid-type]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OracleQMColumns(_Settings):
    """The columns of an oracle table that a QM screen reads (PI1070: RadonPy's monomer polarizability)."""

    polarizability: str = "qm_polarizability_monomer"
    mol_weight: str = "mol_weight_monomer"


class StageSeconds(_Settings):
    """Core-seconds of a property job's two stages (the QM; the MD with its charges)."""

    qm: float = Field(gt=0)
    md: float = Field(gt=0)


class OracleSettings(_Settings):
    """Look properties up in a table instead of running MD (retrospective replays)."""

    table: Path
    id_column: str = "id"
    duration_s: tuple[float, float] = Field(
        default=(0.0, 0.0), description="simulated job duration, uniform in [low, high] seconds (uneven MD jobs)")
    threads: int = Field(default=256, ge=1, description="look-ups running at once when durations are simulated")
    qm_columns: "OracleQMColumns | None" = Field(
        default=None, description="mode qm-first: the table's columns a QM screen returns (polarizability, A^3, and "
                                  "the repeat unit's molecular weight); its MD is the rest of the row")
    stage_core_seconds: "StageSeconds | None" = Field(
        default=None, description="mode qm-first: what a look-up's QM and MD stages stand for, in core-seconds")

    @field_validator("duration_s")
    @classmethod
    def _durations(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1]:
            raise ValueError(f"duration_s must be [low, high] with 0 <= low <= high, got {list(v)}")
        return v


class DescriptorSettings(_Settings):
    """How the pool's descriptors are computed (cached in ``runs/descriptor_cache.sqlite``)."""

    workers: int | None = Field(default=None, ge=1, description="processes (default: every core)")
    timeout_s: float = Field(default=120.0, gt=0, description="per polymer; a polymer over it is skipped")


class StoreSettings(_Settings):
    """The campaign store's journal: ``auto`` is WAL on a local filesystem, a rollback journal on a network one."""

    journal: Literal["auto", "wal", "delete"] = "auto"


class BudgetSettings(_Settings):
    """What a campaign may spend: the driver never submits a batch whose predicted cost would cross it."""

    core_hours: float = Field(gt=0, allow_inf_nan=False, description="core-hours for the whole campaign")


class DriverSettings(_Settings):
    """How the driver waits on jobs."""

    poll_s: float = Field(default=30.0, gt=0, description="longest wait for a job before checking again")
    report_every_s: float = Field(default=300.0, gt=0, description="a 'waiting on' line this often")
    live_report: bool | None = Field(
        default=None, description="rewrite runs/NAME/report.html after each result; default (null): for property "
                                  "jobs (minutes each), not for oracle replays (a rewrite, ~5 s, outlasts a look-up)")
    live_report_reload_s: float = Field(default=30.0, gt=0, description="the live page reloads itself this often")


# settings that change how a campaign runs, not what it computes or picks: a resumed campaign may change them
OPERATIONAL: dict[str, Any] = {"descriptors": True, "driver": True, "store": True, "budget": True,
                               "oracle": {"threads", "duration_s"}}
"""Settings that do not change what a campaign computes: a resumed campaign may change them."""
BY_CONTENT: dict[str, Any] = {"pool": True, "initial_data": True, "calibration": True, "oracle": {"table"}}
"""Input files, identified by their content (hashes in the store), not their path: a campaign folder copied or moved
elsewhere, with its inputs, resumes."""
EXTENSIBLE: frozenset[str] = frozenset({"cycles"})
"""Settings a resumed campaign may raise (more cycles) or lower (it ends sooner)."""
Count = Annotated[int, Strict()]  # `batch_size: true` is not 1


class Campaign(_Settings):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    pool: Path
    objectives: dict[str, Direction]
    initial_size: Count = Field(default=10, ge=1)
    batch_size: Count = Field(default=10, ge=1)
    cycles: Count = Field(default=20, ge=0)
    preset: ProtocolPreset = Field(default_factory=lambda: load_preset("smoke"),
                                   description="smoke | quick | full | a preset YAML file (relative to this file)")
    seed: Count = 0
    strategy: StrategySettings = Field(default_factory=QLogNEHVIGreedy,
                                       description="a name, or a mapping of name and the strategy's settings")
    kernel: KernelName = Field(  # type: ignore[valid-type]
        default="isotropic", description="GP kernel: isotropic (RBF, one lengthscale, the published model), matern "
                                         "(Matern-5/2, one lengthscale) or ard (RBF, one lengthscale per descriptor)")
    mode: Literal["batch", "async", "qm-first"] = Field(
        default="batch", description="batch: wait for the whole batch, refit, pick the next; async: keep "
                                     "`in_flight` jobs running, refit and pick one whenever one finishes; qm-first: "
                                     "each cycle spends what batch_size property jobs cost on QM screens, MD jobs of "
                                     "screened polymers and whole jobs, by expected hypervolume improvement per cost "
                                     "(see surrogate/multifidelity.py)")
    in_flight: Count | None = Field(default=None, ge=1, description="async: jobs kept running (default batch_size)")
    retries: dict[FailureKind, int] = Field(
        default_factory=lambda: dict(DEFAULT_ATTEMPTS),
        description="attempts per failure kind; a retry resubmits the job, which resumes from its last stage")
    oracle: OracleSettings | None = None
    initial_data: list[Path] = Field(
        default_factory=list,
        description="earlier campaigns' exports (workflow export): their finished polymers train the model from "
                    "the start and count toward the initial design; pool polymers among them are not run again")
    calibration: Path | None = Field(
        default=None, description="linear maps to experiment (workflow calibrate): selection, pareto and exports use "
                                  "the calibrated values; the store keeps the raw ones too")
    descriptors: DescriptorSettings = Field(default_factory=DescriptorSettings)
    driver: DriverSettings = Field(default_factory=DriverSettings)
    budget: BudgetSettings | None = None
    store: StoreSettings = Field(default_factory=StoreSettings)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("preset", mode="before")
    @classmethod
    def _preset(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, (str, Path)):
            return load_preset(v, base=(info.context or {}).get("base"))
        return v

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("retries")
    @classmethod
    def _attempts(cls, v: dict[FailureKind, int]) -> dict[FailureKind, int]:
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

    @model_validator(mode="after")
    def _qm_first(self) -> "Campaign":
        if self.mode != "qm-first":
            return self
        from surrogate.physics import QM_INFORMED

        if not set(self.objectives) & set(QM_INFORMED):
            raise ValueError(f"mode qm-first: no objective a QM screen informs ({', '.join(QM_INFORMED)}); use mode "
                             f"batch")
        if self.calibration is not None:
            raise ValueError("mode qm-first: calibration is not supported (the model composes raw polarizabilities "
                             "and densities); calibrate the exports instead")
        if self.oracle is not None and (self.oracle.qm_columns is None or self.oracle.stage_core_seconds is None):
            raise ValueError("mode qm-first with an oracle: give oracle.qm_columns and oracle.stage_core_seconds (what "
                             "a screen reads and what the two stages stand for)")
        return self

    @model_validator(mode="after")
    def _objectives_are_computed(self) -> "Campaign":
        if self.oracle is None:
            bad = [o for o in self.objectives if o not in OBJECTIVE_PROPERTIES]
            if bad:
                raise ValueError(f"key 'objectives': {bad[0]!r} is not computed by the property job (choose from "
                                 f"{', '.join(OBJECTIVE_PROPERTIES)}, or use an oracle table)")
        return self

    def resolve(self, base: Path) -> "Campaign":
        """Make relative paths relative to the campaign file's directory."""
        upd = {"pool": _resolve_pool(self.pool, base), "source": base,
               "initial_data": [_resolve(p, base) for p in self.initial_data]}
        if self.oracle is not None:
            upd["oracle"] = self.oracle.model_copy(update={"table": _resolve(self.oracle.table, base)})
        if self.calibration is not None:
            upd["calibration"] = _resolve(self.calibration, base)
        return self.model_copy(update=upd)

    def check_files(self) -> None:
        """Refuse, naming the key, a file the campaign reads that does not exist (before anything is written)."""
        files = [("pool", self.pool), *(("initial_data", p) for p in self.initial_data),
                 *((("oracle.table", self.oracle.table),) if self.oracle else ()),
                 *((("calibration", self.calibration),) if self.calibration else ())]
        for key, file in files:
            if not file.is_file():
                raise ConfigError(f"campaign {self.name}: key '{key}': {file} does not exist")

    def identity(self) -> dict[str, Any]:
        """The settings a resumed campaign must keep, as JSON: everything but :data:`OPERATIONAL`, :data:`EXTENSIBLE` and the
        input files' paths (:data:`BY_CONTENT`: their content is compared instead)."""
        exclude = {k: True for k in EXTENSIBLE} | OPERATIONAL | BY_CONTENT
        exclude["oracle"] = OPERATIONAL["oracle"] | BY_CONTENT["oracle"]
        exclude["preset"] = {"description"}  # prose: a reworded preset computes the same
        return self.model_dump(mode="json", exclude=exclude)

    def input_files(self) -> dict[str, Path]:
        """The input files identified by content (:data:`BY_CONTENT`), by a label naming the key."""
        files = {"pool": self.pool, **{f"initial_data[{i}]": p for i, p in enumerate(self.initial_data)}}
        if self.oracle is not None:
            files["oracle.table"] = self.oracle.table
        if self.calibration is not None:
            files["calibration"] = self.calibration
        return files

    @property
    def targets(self) -> Objectives:
        """The objectives, typed: names in order, directions, the maximisation form."""
        return Objectives.of(self.objectives)

    @property
    def maximize(self) -> list[bool]:
        return self.targets.maximize


def _resolve(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_pool(p: Path, base: Path) -> Path:
    """A pool path relative to the campaign file; a name found only among the pools shipped with PolyScout (the
    demo's ``demo.csv``) is that one."""
    here = _resolve(p, base)
    shipped = shipped_dir("pools") / p
    return shipped.resolve() if not here.exists() and not p.is_absolute() and shipped.is_file() else here


def load_campaign(path: str | Path) -> Campaign:
    path = Path(path).expanduser().resolve()
    data = load_yaml_mapping(path, "campaign")
    try:
        campaign = Campaign.model_validate(data, context={"base": path.parent})
    except ValidationError as exc:
        raise ConfigError(f"campaign file {path}: {one_line(exc)}") from None
    return campaign.resolve(path.parent)
