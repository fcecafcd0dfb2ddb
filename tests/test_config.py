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
