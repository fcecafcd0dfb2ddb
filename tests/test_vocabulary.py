"""The names that cross boundaries, each from one source: stage keys from typed settings slices, failure kinds and
their one map from exceptions, job states and the store's CHECK, the record's parts, the strategy registry."""

import errno
import sqlite3
import typing

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ValidationError

from workflow.job import JobSpec
from workflow.job.failures import (
    DEFAULT_ATTEMPTS,
    FailureKind,
    JobFailure,
    PhysicsError,
    failure_of,
)
from workflow.job.presets import (
    BUILTIN_PRESETS,
    SMOKE,
    AnalysisSettings,
    CellSettings,
    ChargeSettings,
    DensityFitting,
    PolarizabilitySettings,
    QMResources,
    SimulationSettings,
    VerdictSettings,
)
from workflow.job.stages import STAGES, JobRun

# which stages read which slice directly (their downstream stages follow through the upstream keys)
READERS = {
    ChargeSettings: {"monomer"},
    PolarizabilitySettings: {"qm"},
    DensityFitting: {"monomer", "qm"},
    QMResources: set(),
    CellSettings: {"cell"},
    SimulationSettings: {"md"},
    AnalysisSettings: {"md"},
    VerdictSettings: {"record"},
}


def _downstream(names: set[str]) -> set[str]:
    out = set(names)
    for stage in STAGES:  # STAGES is in dependency order
        if out & set(stage.reads):
            out.add(stage.name)
    return out


def _other_value(model: type[BaseModel], name: str, value):
    """A different valid value for field ``name`` of ``model``."""
    annotation = model.model_fields[name].annotation
    options = [a for arg in typing.get_args(annotation) for a in (typing.get_args(arg) or [arg])]
    if typing.get_origin(annotation) is typing.Literal:
        return next(o for o in typing.get_args(annotation) if o != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x" if "Literal" not in str(annotation) else next(o for o in options if o != value)
    if isinstance(value, dict):
        return {**value, "Xe": "sto-3g"}
    if isinstance(value, tuple):
        return (tuple(x + 1 for x in value[0]),) + value[1:]
    if value is None:
        return 1 if int in options else "def2-universal-jkfit"
    raise AssertionError(f"no other value for {name}={value!r}")


def _keys(preset) -> dict[str, str]:
    return JobRun(JobSpec("*CC(*)c1ccccc1", preset, seed=3), "/nonexistent").keys


def test_every_preset_field_is_in_one_slice_and_changes_exactly_the_keys_of_its_readers():
    base = _keys(SMOKE)
    checked = 0
    for section, slices in (("qm", (ChargeSettings, PolarizabilitySettings, QMResources)),
                            ("md", (CellSettings, SimulationSettings, AnalysisSettings, VerdictSettings))):
        settings = getattr(SMOKE, section)
        declared = {n for s in slices for n in s.model_fields}
        assert declared == set(type(settings).model_fields), f"{section} fields outside any slice"
        for slice_type in slices:
            for name in slice_type.model_fields:
                owner = next(c for c in slice_type.__mro__ if name in getattr(c, "__annotations__", {}))
                try:
                    changed = settings.model_copy(update={name: _other_value(slice_type, name, getattr(settings, name))})
                    type(settings).model_validate(changed.model_dump())
                except ValidationError:
                    continue
                keys = _keys(SMOKE.model_copy(update={section: changed}))
                moved = {stage for stage in base if keys[stage] != base[stage]}
                assert moved == _downstream(READERS[owner]), f"{section}.{name}"
                checked += 1
    assert checked >= 50


def test_seed_and_polymer_enter_only_the_stages_that_depend_on_them():
    base = _keys(SMOKE)
    reseeded = JobRun(JobSpec("*CC(*)c1ccccc1", SMOKE, seed=4), "/nonexistent").keys
    assert {s for s in base if base[s] != reseeded[s]} == _downstream({"monomer", "cell"})
    other = JobRun(JobSpec("*CC(*)C", SMOKE, seed=3), "/nonexistent").keys
    assert all(base[s] != other[s] for s in base)
    same = JobRun(JobSpec("*C(c1ccccc1)C*", SMOKE, seed=3), "/nonexistent").keys  # the same polymer, written otherwise
    assert same == base


def test_failure_of_maps_by_type_and_reports_bugs_as_internal_errors():
    def raised(exc):
        try:
            raise exc
        except BaseException as e:  # noqa: BLE001
            return e

    own = JobFailure(FailureKind.ORIENTED, "record", "aligned")
    assert failure_of(own, "md", FailureKind.MD_FAILED) is own
    assert failure_of(raised(PhysicsError("LAMMPS exit 1")), "md", FailureKind.MD_FAILED).kind == FailureKind.MD_FAILED
    assert failure_of(raised(PermissionError(errno.EACCES, "denied")), "qm", FailureKind.QM_FAILED).kind == "io_error"
    assert failure_of(raised(OSError(errno.ENOSPC, "full")), "qm", FailureKind.QM_FAILED).kind == "io_error"
    assert failure_of(raised(NotADirectoryError(errno.ENOTDIR, "jobs")), "prep", FailureKind.QM_FAILED).kind == "io_error"
    try:  # raised inside a physics library: the physics failed
        np.linalg.cholesky(-np.eye(2))
    except np.linalg.LinAlgError as exc:
        assert failure_of(exc, "qm", FailureKind.QM_FAILED).kind == FailureKind.QM_FAILED
    bug = failure_of(raised(TypeError("unsupported operand")), "md", FailureKind.MD_FAILED)
    assert bug.kind == FailureKind.INTERNAL_ERROR and "test_vocabulary.py" in bug.message and "bug" in bug.message
    assert DEFAULT_ATTEMPTS[FailureKind.INTERNAL_ERROR] == 1  # never retried
    with pytest.raises(ValueError):
        JobFailure("melted", "md", "unknown kinds are refused")


def test_the_store_refuses_states_and_kinds_outside_the_enums(tmp_path):
    from workflow.campaign.store import JobState, Store

    store = Store(tmp_path / "campaign.sqlite")
    store.save_pool([("P1", 1, "*CC*", "*CC*", None)], [])
    (job_id,) = store.record_selection(0, ["P1"], "random", [None], None, None, 0, lambda j, p: f"/jobs/{p}")
    assert store.job(job_id)["state"] == JobState.SUBMITTED
    with pytest.raises(ValueError):
        store.fail_job(job_id, "melted", "md", "no such kind")
    with pytest.raises(sqlite3.IntegrityError):
        with store.db:
            store.db.execute("UPDATE jobs SET state = 'lost' WHERE job_id = ?", (job_id,))
    store.fail_job(job_id, FailureKind.TIMEOUT, "dispatch", "block lost")
    assert [r["failure_kind"] for r in store.jobs(JobState.FAILED)] == ["timeout"]
    store.close()


def test_record_parts_are_disjoint_and_the_record_has_nothing_else():
    from workflow.job.record import RECORD_PARTS, PropertyRecord, _disjoint

    assert set(PropertyRecord.model_fields) == {n for p in RECORD_PARTS for n in p.model_fields}

    class Clash(BaseModel):
        density: float

    with pytest.raises(TypeError, match="density"):
        _disjoint((*RECORD_PARTS, Clash))


def test_step_cache_reuses_only_the_same_key_with_its_outputs(tmp_path):
    from workflow.job.cache import StepCache, step_key

    cache = StepCache(tmp_path)
    key = step_key("cap", {"settings": PolarizabilitySettings()})
    assert key == step_key("cap", {"settings": PolarizabilitySettings()})
    assert key != step_key("cap", {"settings": PolarizabilitySettings(grid_level=1)})
    assert cache.done("cap", key) is None
    (tmp_path / "out.json").write_text("{}")
    cache.mark("cap", key, ["out.json"], 1.0)
    assert cache.done("cap", key)["outputs"] == ["out.json"]
    assert cache.done("cap", step_key("cap", {"settings": PolarizabilitySettings(grid_level=1)})) is None
    (tmp_path / "out.json").unlink()
    assert cache.done("cap", key) is None  # an output gone: not done


def test_every_builtin_preset_splits_into_its_slices():
    for preset in BUILTIN_PRESETS.values():
        assert preset.md.part(SimulationSettings).sampling_steps == preset.md.sampling_steps
        assert preset.qm.part(PolarizabilitySettings).basis == preset.qm.basis


def test_strategy_registry_is_the_settings_union():
    from surrogate.strategies import REGISTERED, STRATEGIES, StrategySettings

    union = typing.get_args(typing.get_args(StrategySettings)[0])
    assert set(union) == set(REGISTERED) == set(STRATEGIES.values())


def test_ehvi_topk_with_pending_jobs_keeps_its_reference_margin(monkeypatch):
    import surrogate.acquisition as acq
    from surrogate.pareto import reference_point
    from surrogate.strategies import EhviTopK, SelectionProblem

    seen = {}

    def fake_greedy(q, X, rows, model, X_train, Y_train, ref, *rest):
        seen["ref"] = ref
        return torch.arange(q), torch.zeros(X.shape[0]), torch.zeros(X.shape[0], 2), torch.ones(X.shape[0], 2), q

    monkeypatch.setattr(acq, "greedy_batch", fake_greedy)
    X = torch.rand(20, 3, dtype=torch.float64)
    Y = torch.rand(5, 2, dtype=torch.float64)
    problem = SelectionProblem(2, X, np.arange(5, 20), X[:5], Y, np.random.default_rng(0), X_pending=X[5:6])
    EhviTopK(ref_margin=1.0).select(problem, model=object())
    assert torch.equal(seen["ref"], reference_point(Y, margin=1.0))


def test_objectives_give_the_sign_and_the_maximisation_form_and_the_store_returns_the_typed_campaign(tmp_path):
    from surrogate.objectives import Objectives
    from workflow.campaign.config import Campaign
    from workflow.campaign.store import Store, StoreError

    objectives = Objectives.of({"refractive_index": "maximize", "density": "minimize"})
    assert objectives.names == ["refractive_index", "density"] and objectives.sign("density") == -1.0
    assert objectives.to_max_form(torch.tensor([[1.5, 1.2]], dtype=torch.float64)).tolist() == [[1.5, -1.2]]
    with pytest.raises(ValueError):
        Objectives.of({"density": "smallest"})
    store = Store(tmp_path / "campaign.sqlite")
    with pytest.raises(StoreError, match="holds no campaign"):
        store.campaign()
    campaign = Campaign.model_validate({"name": "c", "pool": "pool.csv", "initial_size": 2, "batch_size": 2,
                                        "cycles": 1, "objectives": {"refractive_index": "maximize",
                                                                    "density": "minimize"}})
    store.set_meta("campaign", campaign.model_dump(mode="json"))
    assert store.campaign().targets == objectives and store.campaign().preset.name == campaign.preset.name
    store.close()
