"""The `full` preset writes RadonPy's own EQ21step LAMMPS inputs, line for line (nothing is run)."""

import re

import pytest

from workflow.job import md as mdmod
from workflow.job.md_cell import build_cell, build_monomer
from workflow.job.presets import FULL, SMOKE

pytestmark = pytest.mark.physics  # RadonPy cells and LAMMPS inputs


@pytest.fixture(scope="module")
def cell():
    monomer = build_monomer("*CC(*)c1ccccc1", "gasteiger", seed=1)
    cell, _, _ = build_cell(monomer, SMOKE.md, "gasteiger", seed=1)  # a small cell: the inputs are the same
    return cell


def _lines(path):
    # LAMMPS' velocity seed is drawn at random when an input is written; everything else must match
    return [re.sub(r"^(velocity all create \S+) \d+", r"\1 SEED", ln) for ln in path.read_text().splitlines()]


def test_full_preset_inputs_equal_radonpy_eq21step(tmp_path, cell):
    from radonpy.sim.preset import eq

    ours = mdmod.MDRunner(tmp_path / "ours", FULL.md, cores=1).write_inputs(cell)
    (tmp_path / "radonpy").mkdir()
    ref = eq.EQ21step(cell, work_dir=str(tmp_path / "radonpy"), solver_path=mdmod.find_executable("lmp"))
    ref.make_lammps_input()  # RadonPy's defaults are its published protocol
    assert [p.name for p in ours] == ["eq1.data", "eq1.in", "eq2.in", "eq3.in"]
    for path in ours:
        assert _lines(path) == _lines(tmp_path / "radonpy" / path.name), path.name
    text = (tmp_path / "ours" / "eq2.in").read_text()
    assert "kspace_style pppm 1e-6" in text
    assert sum(1 for ln in text.splitlines() if ln.startswith("run ")) == 21
    assert "run 5000000" in (tmp_path / "ours" / "eq3.in").read_text()


def test_smaller_presets_change_only_their_numbers(tmp_path, cell):
    smoke = mdmod.MDRunner(tmp_path / "smoke", SMOKE.md, cores=1).write_inputs(cell)
    full = mdmod.MDRunner(tmp_path / "full", FULL.md, cores=1).write_inputs(cell)

    def shape(path):  # the input's commands, numbers, the neighbour check (eq21_npt_neighbor_check) and drag removed
        return [re.sub(r" drag #$", "", re.sub(r"check (yes|no)$", "check ?", re.sub(r"[-+]?\d[\d.e+-]*", "#", ln)))
                for ln in (ln.rstrip() for ln in _lines(path))]

    for a, b in zip(smoke[1:], full[1:]):
        assert shape(a) == shape(b), a.name
    assert "run 3000" in (tmp_path / "smoke" / "eq3.in").read_text()


def test_time_step_and_neighbour_check_reach_the_21_step_and_the_sampling_runs(tmp_path, cell):
    md = FULL.md.model_copy(update={"eq21_time_step": 1.5, "sampling_time_step": 2.0, "neighbor_every": 2})
    runner = mdmod.MDRunner(tmp_path / "job", md, cores=1)
    runner.write_inputs(cell)

    def steps(name):
        return {ln.split()[1] for ln in (tmp_path / "job" / name).read_text().splitlines() if ln.startswith("timestep")}

    assert steps("eq1.in") == {"0.100000", "1.000000"}  # packing: RadonPy's 0.1 fs relaxation, then 1 fs
    assert steps("eq2.in") == {"1.500000"} and steps("eq3.in") == {"2.000000"}
    for name in ("eq1.in", "eq2.in", "eq3.in"):
        assert "neigh_modify delay 0 every 2 check yes" in (tmp_path / "job" / name).read_text().splitlines()
    # the 21-step's rows set their own checks: RadonPy's NPT rows rebuild at every step unless the preset says
    rows = [ln for ln in (tmp_path / "job" / "eq2.in").read_text().splitlines() if ln.startswith("neigh_modify")]
    assert "neigh_modify delay 0 every 2 check no" in rows and "neigh_modify delay 0 every 1 check yes" not in rows
    checked = mdmod.MDRunner(tmp_path / "checked", md.model_copy(update={"eq21_npt_neighbor_check": True}), cores=1)
    checked.write_inputs(cell)
    rows = {ln for ln in (tmp_path / "checked" / "eq2.in").read_text().splitlines() if ln.startswith("neigh_modify")}
    assert rows == {"neigh_modify delay 0 every 2 check yes"}
    # an additional sampling run (RadonPy's eq.Additional) keeps the preset's time step
    from radonpy.sim.preset import eq

    add = eq.Additional(cell, work_dir=str(tmp_path / "job"), idx=4, solver_path=runner.lmp)
    assert {wf.time_step for wf in runner.inputs.sampling(add.sampling).wf} == {2.0}


def test_barostat_drag_reaches_every_npt_line_and_nothing_else(tmp_path, cell):
    smoke = mdmod.MDRunner(tmp_path / "smoke", SMOKE.md, cores=1).write_inputs(cell)
    npt = [ln for path in smoke[1:] for ln in _lines(path) if " npt " in ln]
    assert len(npt) >= 8 and all(ln.startswith("fix ") and ln.endswith(" drag 1") for ln in npt)  # 7 21-step rows + sampling
    others = [ln for path in smoke[1:] for ln in _lines(path) if " npt " not in ln]
    assert not any("drag" in ln for ln in others)
    full = mdmod.MDRunner(tmp_path / "full", FULL.md, cores=1).write_inputs(cell)
    assert not any("drag" in ln for path in full for ln in _lines(path))  # RadonPy's own inputs
