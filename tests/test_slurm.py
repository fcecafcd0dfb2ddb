"""A property job (the test preset `tests/presets/plumbing.yaml`) through a real SLURM (Parsl's SlurmProvider), end to end.

.ci/run starts a one-node SLURM on loopback (.ci/start_slurm.sh, as root). Elsewhere (a laptop)
the test skips, saying why.
"""

import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLUMBING, write
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.dispatch.evaluators import make_evaluator
from workflow.dispatch.profiles import load_profile

pytestmark = pytest.mark.physics  # a real property job through SLURM


def slurm_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch not on PATH); .ci/start_slurm.sh starts one as root"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: no SLURM controller answers"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mix", "alloc") for s in states):
        return f"no SLURM node up (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem()))
def test_a_property_job_through_real_slurm(tmp_path):
    import os

    cores = min(2, os.cpu_count() or 1)
    bin_dir = Path(sys.executable).parent
    profile = write(tmp_path / "slurm.yaml", f"""name: slurm-ci
scheduler: slurm
queue: debug
cores_per_node: {os.cpu_count()}
cores_per_job: {cores}
walltime: "00:20:00"
max_blocks: 1
address: 127.0.0.1
worker_init:
  - export PATH={bin_dir}:$PATH
  - export PYTHONPATH={Path(__file__).resolve().parents[1]}
""")
    write(tmp_path / "pool.csv", "id,smiles\nPE,*CC*\nPP,*CC(*)C\n")
    camp = load_campaign(write(tmp_path / "c.yaml", "name: on-slurm\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"
                               f"initial_size: 1\nbatch_size: 1\ncycles: 0\npreset: {PLUMBING}\nseed: 3\n"))
    runner = CampaignRunner(camp, tmp_path / "runs")
    runner.run(make_evaluator(camp, load_profile(str(profile)), runner.run_dir))

    store = Store(store_path(tmp_path / "runs", "on-slurm"), readonly=True)
    jobs = store.jobs()
    assert len(jobs) == 1 and jobs[0]["state"] == "done", [dict(j) for j in jobs]
    result = store.results()[0]
    assert 0.5 < result["density"] < 2.0 and result["refractive_index"] > 1
    # the block really was a SLURM batch job: SLURM wrote its output file next to the script
    files = glob.glob(str(tmp_path / "runs" / "on-slurm" / "parsl" / "*" / "submit_scripts" / "*block*"))
    scripts = [f for f in files if not f.endswith((".stdout", ".stderr"))]
    assert scripts and "#SBATCH --partition=debug" in Path(scripts[0]).read_text()
    assert "Found cores" in Path(scripts[0] + ".stdout").read_text()
    # LAMMPS ran with exactly the cores the profile gives a job
    log = (Path(jobs[0]["job_dir"]) / "md" / "eq3.log").read_text()
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
    assert grid and int(grid[1]) * int(grid[2]) * int(grid[3]) == cores
