"""A wheel (``pip install .``, not editable) carries the site profiles and the demo pool: the demo campaign and
``workflow profile show squid`` work from any directory with nothing of the repository beside them."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_a_wheel_ships_the_profiles_and_the_demo_and_runs_them_from_elsewhere(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO),
                          "-w", str(tmp_path / "dist")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("polyscout-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("workflow/shipped/hpc_profiles/squid.yaml", "workflow/shipped/hpc_profiles/local.yaml",
                    "workflow/shipped/pools/demo.csv", "workflow/campaign/campaigns/demo.yaml"):
        assert shipped in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    show = subprocess.run([sys.executable, "-m", "workflow.cli", "profile", "show", "squid"], capture_output=True,
                          text=True, cwd=elsewhere, env=env)
    assert show.returncode == 0 and "scheduler: nqsv" in show.stdout and str(site) in show.stdout, show.stderr
    plan = subprocess.run([sys.executable, "-m", "workflow.cli", "run", "--dry-run"], capture_output=True, text=True,
                          cwd=elsewhere, env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "P0" in plan.stdout and str(elsewhere / "runs" / "demo") in plan.stdout
