"""What a real cluster and real users do to a campaign, one case at a time (issue: campaigns that survive).

Each test injects one fault and checks the outcome: the job's failure with its kind, a one-line error
with exit code 2 before anything is written, or a result that is not lost.
"""

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import write
from tests.test_campaign import ORACLE, SMILES, assert_store_consistent
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.evaluator import JobRequest
from workflow.campaign.store import Store
from workflow.cli import main
from workflow.dispatch.evaluators import OracleEvaluator

CAMPAIGN = ("name: faults\npool: pool.csv\nobjectives: {refractive_index: maximize, Cp: maximize}\n"
            "initial_size: 4\nbatch_size: 3\ncycles: 2\nseed: 4\noracle: {table: oracle.csv}\n")


def setup(tmp_path: Path, campaign: str = CAMPAIGN, oracle: str = ORACLE, pool: list[str] = SMILES) -> Path:
    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(pool)))
    write(tmp_path / "oracle.csv", oracle)
    return write(tmp_path / "c.yaml", campaign)


def run(tmp_path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["run", str(tmp_path / "c.yaml"), "--runs", str(tmp_path / "runs"), *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(err: str, needle: str) -> None:
    assert err.count("\n") == 1 and err.startswith("workflow: error: ") and needle in err, err


def store(tmp_path: Path) -> Store:
    return Store(store_path(tmp_path / "runs", "faults"), readonly=True)


# --- 1. lost workers, I/O errors, results written before the worker died ---------------------------------------
class Unreliable(OracleEvaluator):
    """The oracle, with faults: ``raise_first[id]`` exceptions raised on the first attempts of a polymer, after
    (``after_writing``) or before its record is written."""

    def __init__(self, settings, raise_first: dict[str, list[BaseException]], after_writing: set[str] = frozenset()):
        super().__init__(settings)
        self.raise_first, self.after_writing, self.calls = raise_first, after_writing, {}

    def submit(self, job: JobRequest):
        from concurrent.futures import Future

        n = self.calls[job.polymer_id] = self.calls.get(job.polymer_id, 0) + 1
        faults = self.raise_first.get(job.polymer_id, [])
        if n > len(faults):
            return super().submit(job)
        if job.polymer_id in self.after_writing:
            super().submit(job)  # the record is written, then the worker is lost
        fut = Future()
        fut.set_exception(faults[n - 1])
        return fut


def lost(name: str) -> Exception:
    """Parsl's own exception for a lost manager or worker (a block's walltime, a node gone)."""
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

    return ManagerLost(b"m1", "node1") if name == "ManagerLost" else WorkerLost(7, "node1")


def test_lost_workers_are_timeouts_retried_and_a_written_result_is_ingested(tmp_path):
    from workflow.dispatch.evaluators import ParslEvaluator
    from workflow.dispatch.profiles import load_profile
    from workflow.job.presets import SMOKE

    parsl_ev = ParslEvaluator(load_profile("local"), SMOKE, tmp_path)  # Parsl does not start until entered
    assert parsl_ev.failure(lost("ManagerLost")).kind == "timeout"
    assert parsl_ev.failure(lost("WorkerLost")).kind == "timeout"
    assert parsl_ev.failure(PermissionError(13, "Permission denied", "/x")).kind == "io_error"
    assert parsl_ev.failure(type("ManagerLost", (Exception,), {})()).kind == "internal_error"  # by type, not name

    camp = load_campaign(setup(tmp_path))
    ids = [pid for pid, _ in CampaignRunner(camp, tmp_path / "plan", dry_run=True).plan()[2]]
    walltime, gone, written = ids[0], ids[1], ids[2]

    class Lost(Unreliable):
        def failure(self, exc):
            return parsl_ev.failure(exc)

    ev = Lost(camp.oracle, {walltime: [lost("ManagerLost")], gone: [lost("WorkerLost")] * 5,
                            written: [lost("ManagerLost")]}, after_writing={written})
    CampaignRunner(camp, tmp_path / "runs").run(ev)
    jobs = {j["polymer_id"]: j for j in store(tmp_path).jobs()}
    assert jobs[walltime]["state"] == "done" and jobs[walltime]["attempts"] == 2  # retried, then done
    assert jobs[gone]["state"] == "failed" and jobs[gone]["failure_kind"] == "timeout"
    assert jobs[gone]["attempts"] == 3 == ev.calls[gone]  # the default: 3 attempts for a timeout
    assert jobs[written]["state"] == "done" and ev.calls[written] == 1  # its result was there: not run again
    assert_store_consistent(store(tmp_path))


def test_a_job_directory_that_cannot_be_written_is_an_io_error_not_a_crash(tmp_path, capsys):
    setup(tmp_path)
    (tmp_path / "runs" / "faults").mkdir(parents=True)
    (tmp_path / "runs" / "faults" / "jobs").write_text("a file where the job directories go")
    rc, out, err = run(tmp_path, capsys)
    assert rc == 3  # the whole batch failed for the machine's reason: the campaign stops (issue 40, case 2)
    one_line_error(err, "cycle 0: all 4 job(s) failed (io_error 4")
    jobs = store(tmp_path).jobs()
    assert jobs and all(j["state"] == "returned" and j["failure_kind"] == "io_error" for j in jobs)
    assert all(j["attempts"] == 2 for j in jobs)  # io_error: 2 attempts by default
    assert "io_error" in out
    (tmp_path / "runs" / "faults" / "jobs").unlink()  # fixed
    assert run(tmp_path, capsys)[0] == 0
    s = store(tmp_path)
    assert_store_consistent(s)
    assert len([j for j in s.jobs() if j["state"] == "done"]) == 4 + 3 + 3  # the returned cycle spent nothing


# --- 2. a non-numeric objective is that job's failure -------------------------------------------------------
def test_a_non_numeric_objective_fails_its_job_and_a_rerun_does_not_crash(tmp_path, capsys):
    lines = ORACLE.split("\n")
    bad = [ln if not ln.startswith("Q05,") else ",".join(ln.split(",")[:2] + ["abc"] + ln.split(",")[3:])
           for ln in lines]
    setup(tmp_path, oracle="\n".join(bad))
    assert run(tmp_path, capsys)[0] == 0
    q05 = [j for j in store(tmp_path).jobs() if j["polymer_id"] == "Q05"]
    if q05:  # picked: failed with the value named
        assert q05[0]["failure_kind"] == "invalid_result" and "'abc'" in q05[0]["failure_message"]
    assert run(tmp_path, capsys)[0] == 0  # the finished campaign reruns cleanly
    assert_store_consistent(store(tmp_path))


def test_an_ingested_record_without_a_number_is_invalid_result(tmp_path, capsys):
    setup(tmp_path, campaign=CAMPAIGN.replace("oracle: {table: oracle.csv}", "oracle: {table: oracle.csv, "
                                                                            "duration_s: [8, 8]}"))
    camp = load_campaign(tmp_path / "c.yaml")
    runner = CampaignRunner(camp, tmp_path / "runs")
    runner.prepare()
    pick = runner.choose(0, runner.open_rows())
    job_ids = runner.store.record_selection(0, pick.ids, pick.label, pick.selection.acquisition, None, None, 0,
                                            job_dir_for=runner.job_dir)
    first = Path(runner.job_dir(job_ids[0], pick.ids[0]))
    write(first / "record.json", json.dumps({"psmiles": SMILES[int(pick.ids[0][1:])], "refractive_index": 1.5,
                                             "Cp": "abc"}))
    runner.store.close()
    fast = camp.model_copy(update={"oracle": camp.oracle.model_copy(update={"duration_s": (0.0, 0.0)})})
    CampaignRunner(fast, tmp_path / "runs").run(OracleEvaluator(fast.oracle))
    job = store(tmp_path).job(job_ids[0])
    assert job["state"] == "failed" and job["failure_kind"] == "invalid_result" and "'abc'" in job["failure_message"]


# --- 3. job directories are absolute; older stores are migrated ---------------------------------------------
def test_job_directories_are_absolute_and_relative_ones_are_migrated(tmp_path, capsys, monkeypatch):
    setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = main(["run", "c.yaml", "--runs", "runs"])
    assert rc == 0
    jobs = store(tmp_path).jobs()
    assert all(Path(j["job_dir"]).is_absolute() and Path(j["job_dir"], "record.json").is_file() for j in jobs)
    db = sqlite3.connect(store_path(tmp_path / "runs", "faults"))
    with db:  # as an older PolyScout wrote them
        db.execute("UPDATE jobs SET job_dir = 'runs/faults/jobs/' || substr(job_dir, length(rtrim(job_dir, "
                   "replace(job_dir, '/', ''))) + 1)")
    db.close()
    monkeypatch.chdir(tmp_path.parent)  # resumed from elsewhere
    Store(store_path(tmp_path / "runs", "faults")).close()
    again = store(tmp_path).jobs()
    assert [j["job_dir"] for j in again] == [j["job_dir"] for j in jobs]


# --- 4. a job directory never returns another polymer's result ---------------------------------------------
def test_the_oracle_does_not_reuse_another_polymers_record(tmp_path):
    camp = load_campaign(setup(tmp_path))
    ev = OracleEvaluator(camp.oracle)
    job = JobRequest("Q01", "*CC(*)C", tmp_path / "job", 0)
    write(tmp_path / "job" / "record.json", json.dumps({"psmiles": "*CC*", "refractive_index": 1.4, "Cp": 1.0}))
    assert ev.finished(job) is None
    write(tmp_path / "job" / "record.json", json.dumps({"psmiles": "*CC(*)C", "refractive_index": 1.4, "Cp": 1.0}))
    assert ev.finished(job)["refractive_index"] == 1.4


# --- 5. an empty, truncated or foreign store is refused ------------------------------------------------------
@pytest.mark.parametrize("damage, needle", [(b"", "is empty"), (b"\x00garbage" * 10, "is not a SQLite database"),
                                            ("foreign", "is not a PolyScout campaign store")])
def test_a_damaged_store_is_refused_not_restarted(tmp_path, capsys, damage, needle):
    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    path = store_path(tmp_path / "runs", "faults")
    if damage == "foreign":
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE notes (x)")
        db.commit()
        db.close()
    else:
        path.write_bytes(damage)
    for wal in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        wal.unlink(missing_ok=True)
    before = path.read_bytes()
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, needle)
    assert str(path) in err and path.read_bytes() == before  # untouched
    assert main(["status", "faults", "--runs", str(tmp_path / "runs")]) == 2
    one_line_error(capsys.readouterr().err, needle)


# --- 6. an edited pool is refused ----------------------------------------------------------------------------
def test_an_edited_pool_is_refused_and_a_changed_row_is_never_misfiled(tmp_path, capsys):
    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    swapped = list(SMILES)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    setup(tmp_path, pool=swapped)
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, "pool content")
    from workflow.campaign.store import StoreError

    s = Store(store_path(tmp_path / "runs", "faults"))
    rows = [(f"Q{i:02d}", i + 1, smi, smi, None) for i, smi in enumerate(swapped)]
    with pytest.raises(StoreError, match="row 3 \\(id Q02\\)"):
        s.save_pool(rows, [])


# --- 7. read-only and network-filesystem stores ---------------------------------------------------------------
def test_a_read_only_campaign_is_readable_and_network_filesystems_get_a_rollback_journal(tmp_path, capsys,
                                                                                         monkeypatch):
    from workflow.campaign import store as store_module

    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    path = store_path(tmp_path / "runs", "faults")
    real_access = os.access
    # an archived campaign: the directory is read-only (root ignores permission bits, so say so to the store)
    monkeypatch.setattr(store_module.os, "access", lambda p, mode: False if Path(p) == path.parent
                        else real_access(p, mode))
    capsys.readouterr()
    for command in ("status", "pareto", "export"):
        extra = ["--out", str(tmp_path / "export.csv"), "--format", "csv"] if command == "export" else []
        assert main([command, "faults", "--runs", str(tmp_path / "runs"), *extra]) == 0, capsys.readouterr().err
    assert "non-dominated" in capsys.readouterr().out
    monkeypatch.undo()

    monkeypatch.setattr(store_module, "filesystem_type", lambda p: "nfs4")
    assert store_module.journal_mode(path) == "delete"
    s = Store(tmp_path / "nfs" / "campaign.sqlite")
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    s.close()
    monkeypatch.setattr(store_module, "filesystem_type", lambda p: "ext4")
    assert store_module.journal_mode(path) == "wal" and store_module.journal_mode(path, "delete") == "delete"


# --- 8. errors, not tracebacks ----------------------------------------------------------------------------------
def test_os_and_sqlite_errors_are_one_line_errors(tmp_path, capsys):
    setup(tmp_path)
    write(tmp_path / "runs-file", "not a directory")
    rc = main(["run", str(tmp_path / "c.yaml"), "--runs", str(tmp_path / "runs-file")])
    assert rc == 2
    one_line_error(capsys.readouterr().err, "runs-file")


def test_a_full_disk_during_a_store_write_stops_with_one_line_and_the_campaign_resumes(tmp_path, capsys,
                                                                                       monkeypatch):
    setup(tmp_path)
    real = Store.finish_job
    calls = []

    def full(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args)

    monkeypatch.setattr(Store, "finish_job", full)
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, "disk is full")
    monkeypatch.undo()  # space freed
    assert run(tmp_path, capsys)[0] == 0
    s = store(tmp_path)
    assert_store_consistent(s)
    assert len(s.jobs()) == 4 + 3 + 3


# --- 9. settings that cannot work are refused before anything is written ----------------------------------
@pytest.mark.parametrize("edit, needle", [
    (lambda c, o, p: (c, o, "id,smiles\n"), "no usable polymer"),
    (lambda c, o, p: (c, o, "id,smiles\nA,*CC\nB,*X*\n"), "no usable polymer"),
    (lambda c, o, p: (c, o.replace("Cp", "heat_capacity"), p), "no column(s) 'Cp'"),
    (lambda c, o, p: (c, o + "\nQ01,1.5,1000,atactic,100", p), "id Q01 is on more than one row"),
    (lambda c, o, p: (c.replace("batch_size: 3", "batch_size: true"), o, p), "key 'batch_size'"),
    (lambda c, o, p: (c + "seed: 5\n", o, p), "key 'seed' is given twice"),
    (lambda c, o, p: (c.replace("oracle.csv", "oracel.csv"), o, p), "oracel.csv does not exist"),
])
def test_settings_that_cannot_work_are_refused_before_anything_is_written(tmp_path, capsys, edit, needle):
    pool = "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES))
    campaign, oracle, pool = edit(CAMPAIGN, ORACLE, pool)
    write(tmp_path / "pool.csv", pool)
    write(tmp_path / "oracle.csv", oracle)
    write(tmp_path / "c.yaml", campaign)
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, needle)
    assert not store_path(tmp_path / "runs", "faults").exists()
    if "oracel" in needle:  # the typo fixed: accepted, not "different settings"
        write(tmp_path / "c.yaml", CAMPAIGN)
        assert run(tmp_path, capsys)[0] == 0


# --- 10. logs and names ------------------------------------------------------------------------------------------
def test_user_strings_are_shortened_and_escaped_and_names_stay_inside_runs(tmp_path, capsys):
    pool = "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES))
    pool += '\n"Q\nEVIL",*CC(*)' + "C" * 1_000_000 + "X"
    write(tmp_path / "pool.csv", pool)
    write(tmp_path / "oracle.csv", ORACLE)
    write(tmp_path / "c.yaml", CAMPAIGN)
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0 and max(len(ln) for ln in out.splitlines()) < 400 and "Q\\nEVIL" in out
    capsys.readouterr()
    assert main(["status", "faults", "--runs", str(tmp_path / "runs")]) == 0
    status = capsys.readouterr().out
    assert max(len(ln) for ln in status.splitlines()) < 400 and "\nEVIL" not in status
    assert main(["status", "../faults", "--runs", str(tmp_path / "runs")]) == 2
    one_line_error(capsys.readouterr().err, "campaign name")
    write(tmp_path / "c.yaml", CAMPAIGN + "preset: /etc/passwd\n")
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2 and "root:" not in err and err.count("\n") == 1


@pytest.mark.physics  # RadonPy builds the monomer
def test_an_empty_pickle_is_recomputed_not_a_crash(tmp_path):
    from workflow.job import JobSpec
    from workflow.job.presets import SMOKE
    from workflow.job.stages import run_stages

    spec = JobSpec("*CC*", SMOKE, seed=1)
    first = run_stages(spec, tmp_path, ("monomer",))
    (tmp_path / "monomer.pickle").write_bytes(b"")
    again = run_stages(spec, tmp_path, ("monomer",))
    assert "monomer" in again["timings"] and again["monomer"].GetNumAtoms() == first["monomer"].GetNumAtoms()


def test_a_record_written_twice_by_a_retried_job_is_stored_once(tmp_path, capsys):
    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    s = store(tmp_path)
    first = s.jobs()[0]
    before = {r["job_id"]: r["properties"] for r in s.results()}
    s.close()
    # the first attempt's worker, declared lost, finishes after all and writes its record again
    record = json.loads(Path(first["job_dir"], "record.json").read_text()) | {"refractive_index": 9.9}
    write(Path(first["job_dir"]) / "record.json", json.dumps(record))
    assert run(tmp_path, capsys)[0] == 0
    s = store(tmp_path)
    assert {r["job_id"]: r["properties"] for r in s.results()} == before
    assert_store_consistent(s)


# --- for real: Parsl blocks and drivers killed while a smoke job runs -------------------------------------------
REAL = ("name: real\npool: pool.csv\nobjectives: {refractive_index: maximize, abbe_number: maximize}\n"
        "initial_size: 1\nbatch_size: 1\ncycles: 0\npreset: smoke\nseed: 3\n")


def real_setup(tmp_path: Path) -> tuple[Path, Path]:
    write(tmp_path / "pool.csv", "id,smiles\nPP,*CC(*)C\n")
    profile = write(tmp_path / "fast-heartbeat.yaml", "name: local-hb\nscheduler: local\ncores_per_job: 2\n"
                                                       "cores_per_node: 2\nheartbeat_period: 2\n"
                                                       "heartbeat_threshold: 8\n")
    return write(tmp_path / "c.yaml", REAL), profile


def start_driver(tmp_path: Path, campaign: Path, profile: Path):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "workflow.cli", "run", str(campaign), "--profile", str(profile),
                             "--runs", str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=as_foreground)


def as_foreground() -> None:
    """In the child: Ctrl-C's default, as in a terminal's foreground job. A test run from a background job of a
    script inherits SIGINT ignored (POSIX shells do that), and Python then keeps ignoring it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_file(pattern: str, root: Path, proc, limit: float = 240) -> Path:
    import time

    t0 = time.time()
    while time.time() - t0 < limit:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError(f"{pattern} never appeared")


def kill_block(root: Path) -> None:
    """End this test's block as a scheduler does: its whole process group (pool, workers, mpirun), and its LAMMPS.

    Only this test's processes (the pool's command line names its log directory under ``root``, LAMMPS runs in a
    job directory under it): a campaign or another test session running beside the tests is left alone.
    """
    import signal

    import psutil

    root = root.resolve()
    pools, lammps = [], []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "process_worker_pool" in cmd and f"{root}{os.sep}" in cmd:  # not a sibling whose name begins the same
            pools.append(proc)
        elif "lmp -in" in cmd and proc.info["cwd"] and Path(proc.info["cwd"]).is_relative_to(root):
            lammps.append(proc)
    assert pools, f"no worker pool of this test's campaign (under {root}) is running"
    for pgid in {os.getpgid(proc.pid) for proc in pools}:
        os.killpg(pgid, signal.SIGKILL)
    for proc in lammps:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass  # it went with its process group


@pytest.mark.integration
def test_killing_a_block_ends_this_campaigns_pool_and_lammps_and_no_other(tmp_path):
    """kill_block ends the worker pool and LAMMPS of the campaign under its root and leaves those of a campaign beside
    it alone (a user's campaign running while the tests run; its directory's name begins the same)."""
    import subprocess
    import sys

    procs = {}
    for name in ("mine", "mine2"):
        where = tmp_path / name
        where.mkdir()
        for kind, args in (("pool", ["process_worker_pool.py", f"--logdir={where / 'parsl'}"]),
                           ("lammps", ["lmp", "-in", "in.lmp"])):
            procs[name, kind] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *args],
                                                 cwd=where, start_new_session=True)
    try:
        kill_block(tmp_path / "mine")
        for kind in ("pool", "lammps"):
            assert procs["mine", kind].wait(timeout=10) == -9, kind
        for kind in ("pool", "lammps"):  # a SIGKILL sent to them would have landed within these seconds
            with pytest.raises(subprocess.TimeoutExpired):
                procs["mine2", kind].wait(timeout=2)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_parsl_block_killed_mid_job_is_retried_and_the_job_resumes_its_directory(tmp_path):
    campaign, profile = real_setup(tmp_path)
    driver = start_driver(tmp_path, campaign, profile)
    packed = wait_for_file("runs/real/jobs/*/md/stages/packing.json", tmp_path, driver)
    job_dir = packed.parents[2]
    qm_made = (job_dir / "stages" / "qm.json").stat().st_mtime_ns
    kill_block(tmp_path)  # the block's workers and its LAMMPS die; the driver lives on
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out
    assert "timeout" in out and "attempt 2 of 3" in out, out
    job = Store(store_path(tmp_path / "runs", "real"), readonly=True).jobs()[0]
    assert job["state"] == "done" and job["attempts"] == 2
    assert (job_dir / "stages" / "qm.json").stat().st_mtime_ns == qm_made  # resumed, not recomputed
    assert packed.stat().st_mtime_ns and "md_packing" not in json.loads((job_dir / "record.json").read_text())[
        "timings"]


@pytest.mark.slow
def test_the_driver_and_a_worker_killed_together_resume_the_job(tmp_path):
    import signal
    import subprocess
    import sys

    campaign, profile = real_setup(tmp_path)
    driver = start_driver(tmp_path, campaign, profile)
    qm = wait_for_file("runs/real/jobs/*/stages/qm.json", tmp_path, driver)
    job_dir = qm.parents[1]
    qm_made = qm.stat().st_mtime_ns
    os.killpg(driver.pid, signal.SIGKILL)
    kill_block(tmp_path)
    driver.wait()
    again = subprocess.run([sys.executable, "-m", "workflow.cli", "run", str(campaign), "--profile", str(profile),
                            "--runs", str(tmp_path / "runs")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming 1 unfinished job" in again.stdout
    job = Store(store_path(tmp_path / "runs", "real"), readonly=True).jobs()[0]
    assert job["state"] == "done" and job["attempts"] == 1  # resubmitted as unfinished, not as a failure
    assert qm.stat().st_mtime_ns == qm_made
    assert "qm" not in json.loads((job_dir / "record.json").read_text())["timings"]


def test_oracle_ids_that_look_like_missing_values_are_ids(tmp_path):
    """Issue 40, case 7: pandas read the ids NA, nan and None as missing values (a false 'not in the oracle
    table' and a false duplicate); ids are text, verbatim, while a blank objective cell stays missing."""
    from workflow.campaign.config import OracleSettings

    table = write(tmp_path / "oracle.csv", "id,density,Cp\nNA,1.0,2.0\nnan,1.1,2.1\nNone,1.2,\nP1,1.3,2.3\n")
    ev = OracleEvaluator(OracleSettings(table=table), ["density", "Cp"])
    assert sorted(ev.rows.index) == ["NA", "None", "P1", "nan"]
    record = ev._lookup(JobRequest("NA", "*CC*", tmp_path / "j", 0))
    assert record["density"] == 1.0
    assert ev._lookup(JobRequest("None", "*CC*", tmp_path / "k", 0))["Cp"] is None  # a blank cell: missing


def test_a_huge_finite_objective_is_that_jobs_invalid_result_and_the_campaign_resumes(tmp_path, capsys):
    """Issue 40, case 8: Cp x 1e160 stopped the GP with a raw torch error on every rerun."""
    lines = ORACLE.split("\n")
    huge = [lines[0]] + [",".join(ln.split(",")[:2] + [f"{float(ln.split(',')[2]) * 1e160:g}"] + ln.split(",")[3:])
                         if i % 2 else ln for i, ln in enumerate(lines[1:])]
    setup(tmp_path, oracle="\n".join(huge))
    assert run(tmp_path, capsys)[0] == 0
    jobs = store(tmp_path).jobs()
    odd = [j for j in jobs if int(j["polymer_id"][1:]) % 2]
    assert odd and all(j["failure_kind"] == "invalid_result" and "e+16" in j["failure_message"] for j in odd)
    assert any(j["state"] == "done" for j in jobs)
    assert run(tmp_path, capsys)[0] == 0  # reruns cleanly
    assert_store_consistent(store(tmp_path))


def test_a_resume_from_a_file_without_the_oracle_line_runs_the_oracle_it_started_with(tmp_path, capsys,
                                                                                       monkeypatch):
    """Issue 40, case 1: the runner kept `oracle` as the campaign started, but `cmd_run` built the evaluator from
    the file as written (property jobs inside an oracle campaign)."""
    import workflow.dispatch.evaluators as evaluators

    computed = CAMPAIGN.replace("Cp: maximize", "density: maximize")  # objectives a property job computes too
    setup(tmp_path, campaign=computed, oracle=ORACLE.replace(",Cp,", ",density,", 1))
    assert run(tmp_path, capsys)[0] == 0
    made = []
    real = evaluators.make_evaluator
    monkeypatch.setattr(evaluators, "make_evaluator", lambda c, p, d: made.append(c) or real(c, p, d))
    write(tmp_path / "c.yaml", computed.replace("oracle: {table: oracle.csv}\n", ""))
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0 and "kept as the campaign started" in out
    assert made and made[0].oracle is not None and made[0].oracle.table.name == "oracle.csv"
    rc, out, _ = run(tmp_path, capsys, "--dry-run")
    assert rc == 0 and ("oracle table" in out or "nothing left" in out) and "property jobs" not in out


def test_a_descriptor_failure_names_the_files_row_not_the_row_among_kept_rows(tmp_path, capsys):
    """Issue 40, case 11: with a row skipped above it, a descriptor failure in file row 4 was 'row 3' (and the
    store's pool rows were off the same way)."""
    pool = [SMILES[0], SMILES[0], SMILES[1], "[1*]CC([2*])CCCC", *SMILES[2:8]]  # row 2: a duplicate of row 1
    setup(tmp_path, pool=pool)
    assert run(tmp_path, capsys)[0] == 0
    s = store(tmp_path)
    assert [(p["row"], p["polymer_id"], p["stage"]) for p in s.pool_problems()] == [
        (2, "Q01", "validation"), (4, "Q03", "descriptor")]
    rows = {r["polymer_id"]: r["row"] for r in s.db.execute("SELECT polymer_id, row FROM pool")}
    assert rows["Q00"] == 1 and rows["Q02"] == 3 and rows["Q04"] == 5
    capsys.readouterr()
    assert main(["status", "faults", "--runs", str(tmp_path / "runs")]) == 0
    assert "row 4 (id Q03, descriptor)" in capsys.readouterr().out


# --- issue 40, case 12: small things that printed tracebacks, wrong names or nothing -------------------------
def test_a_corrupt_descriptor_cache_is_named_as_such(tmp_path, capsys):
    setup(tmp_path)
    write(tmp_path / "runs" / "descriptor_cache.sqlite", "garbage " * 100)
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, "descriptor cache")
    assert "campaign store" not in err and "move it aside" in err


def test_a_store_deleted_mid_run_stops_the_run_and_keeps_what_it_held(tmp_path, capsys, monkeypatch):
    """The run directory deleted while jobs ran: the run ended 'done; store at X', exit 0, and nothing was kept."""
    import shutil

    from workflow.campaign.dispatcher import Dispatcher

    setup(tmp_path)
    real, seen = Dispatcher.record, []

    def record_then_delete(self, *args):
        real(self, *args)
        seen.append(1)
        if len(seen) == 5:
            shutil.rmtree(tmp_path / "runs" / "faults")

    monkeypatch.setattr(Dispatcher, "record", record_then_delete)
    rc, out, err = run(tmp_path, capsys)
    assert rc == 2 and "done; store at" not in out
    one_line_error(err, "was deleted while the campaign ran")
    assert len([j for j in store(tmp_path).jobs() if j["state"] == "done"]) >= 5  # kept at its own path
    monkeypatch.undo()
    assert run(tmp_path, capsys)[0] == 0
    assert_store_consistent(store(tmp_path))


@pytest.mark.integration
def test_status_into_a_closed_pipe_is_quiet(tmp_path, capsys):
    import subprocess
    import sys

    setup(tmp_path, pool=SMILES * 1)
    assert run(tmp_path, capsys)[0] == 0
    cmd = f"'{sys.executable}' -m workflow.cli status faults --runs '{tmp_path / 'runs'}' | head -n1"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("campaign faults") and done.stdout.count("\n") == 1
    assert done.stderr == ""


@pytest.mark.parametrize("group", ["profile", "job", "pool"])
def test_a_command_group_without_its_action_prints_its_own_usage(capsys, group):
    assert main([group]) == 2
    assert f"usage: workflow {group} " in capsys.readouterr().out


def test_output_paths_are_made_or_refused_before_anything_is_printed(tmp_path, capsys):
    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    runs = str(tmp_path / "runs")
    assert main(["pareto", "faults", "--runs", runs, "--plot", str(tmp_path / "new" / "dir" / "x.png")]) == 0
    assert (tmp_path / "new" / "dir" / "x.png").stat().st_size > 0
    capsys.readouterr()
    (tmp_path / "out").mkdir()
    assert main(["export", "faults", "--runs", runs, "--out", str(tmp_path / "out")]) == 2
    out = capsys.readouterr()
    one_line_error(out.err, "is a directory: name a file")
    assert not list((tmp_path / "out").iterdir()) and ".tmp" not in out.err


@pytest.mark.parametrize("argv", [["pool", "featurize", "p.csv", "--out", "x", "--timeout", "-5"],
                                  ["pool", "featurize", "p.csv", "--out", "x", "--workers", "0"],
                                  ["job", "run", "*CC*", "--dir", "d", "--cores", "0"]])
def test_a_number_that_must_be_positive_is_refused(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and "give a number above 0" in capsys.readouterr().err


def test_a_setting_kept_as_the_campaign_started_is_named_briefly(tmp_path, capsys):
    setup(tmp_path, campaign=CAMPAIGN + "preset: quick\n")
    assert run(tmp_path, capsys)[0] == 0
    write(tmp_path / "c.yaml", CAMPAIGN)
    rc, out, _ = run(tmp_path, capsys)
    kept = [ln for ln in out.splitlines() if "kept as the campaign started" in ln]
    assert rc == 0 and kept and "preset: quick" in kept[0] and len(kept[0]) < 200, kept


def test_a_full_disk_while_the_store_is_made_leaves_nothing_beside_it(tmp_path, capsys, monkeypatch):
    import errno

    import workflow.campaign.store as store_module

    setup(tmp_path)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", full)
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, "No space left on device")
    assert not [p.name for p in (tmp_path / "runs" / "faults").iterdir() if ".new" in p.name]


# --- issue 40, case 9: Ctrl-C and SIGTERM say one line --------------------------------------------------------
def _driver(tmp_path: Path):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "workflow.cli", "run", str(tmp_path / "c.yaml"), "--runs",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_foreground)


def _wait_for(path: Path, proc, limit: float = 120) -> None:
    import time

    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None and time.time() - t0 < limit, proc.communicate()
        time.sleep(0.1)


@pytest.mark.slow  # real processes
def test_ctrl_c_while_descriptors_compute_is_one_line_and_keeps_them(tmp_path):
    import signal
    import time

    pool = [f"*CC(*){'C' * k}" for k in range(1, 41)] + [f"*CC(*)C(=O)O{'C' * k}" for k in range(1, 41)]
    setup(tmp_path, pool=pool)
    proc = _driver(tmp_path)
    _wait_for(tmp_path / "runs" / "descriptor_cache.sqlite", proc)
    time.sleep(4)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err and "Error" not in err, err
    stopped = [ln for ln in err.splitlines() if ln.startswith("workflow: stopped by SIGINT")]
    assert len(stopped) == 1 and "run the same command again to resume" in stopped[0]
    kept = sqlite3.connect(tmp_path / "runs" / "descriptor_cache.sqlite").execute(
        "SELECT COUNT(*) FROM descriptors").fetchone()[0]
    assert kept > 0


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("how", ["SIGTERM to the driver", "SIGINT to the group"])
def test_a_signal_while_jobs_run_is_one_line_and_the_campaign_resumes(tmp_path, capsys, how):
    import signal
    import time

    setup(tmp_path, campaign=CAMPAIGN.replace("{table: oracle.csv}", "{table: oracle.csv, duration_s: [8, 8]}"))
    proc = _driver(tmp_path)
    _wait_for(tmp_path / "runs" / "faults" / "campaign.sqlite", proc)
    time.sleep(3)  # cycle 0's jobs are running
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    name = how.split()[0]
    assert proc.returncode == 128 + getattr(signal, name), (out, err)
    assert "Traceback" not in out + err and err.count("\n") == 1 and f"stopped by {name}" in err, err
    assert len(store(tmp_path).jobs()) == 4  # cycle 0 recorded, its jobs left to resume
    write(tmp_path / "c.yaml", CAMPAIGN)
    rc, out, _ = run(tmp_path, capsys)
    # the oracle's look-ups (threads) finish before the interpreter exits; a real job's worker would be left running
    assert rc == 0 and out.count("finished while the driver was away") + 4 * ("resuming 4 unfinished" in out) == 4
    assert_store_consistent(store(tmp_path))


@pytest.mark.slow
def test_ctrl_c_while_a_parsl_job_runs_is_one_line_and_the_job_resumes(tmp_path):
    import signal

    campaign, profile = real_setup(tmp_path)
    driver = start_driver(tmp_path, campaign, profile)  # its own process group, as a terminal's foreground job
    wait_for_file("runs/real/jobs/*/md/stages/packing.json", tmp_path, driver)
    os.killpg(driver.pid, signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    assert "Traceback" not in out and out.count("workflow: stopped by SIGINT") == 1, out
    driver = start_driver(tmp_path, campaign, profile)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0 and "resuming 1 unfinished job(s)" in out, out
    job = Store(store_path(tmp_path / "runs", "real"), readonly=True).jobs()[0]
    assert job["state"] == "done" and job["attempts"] == 1


# --- issue 40, case 2: a batch lost to the machine stops the campaign, not its budget -----------------------------
def _read_only_bind(path: Path) -> bool:
    """Remount ``path`` read-only over itself (as a read-only bind mount on a cluster); False where not allowed."""
    import subprocess

    if os.geteuid() != 0:
        return False
    made = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if made.returncode != 0:
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(path)], capture_output=True)
        return False
    return True


@pytest.mark.integration
def test_a_read_only_jobs_mount_stops_the_campaign_and_gives_the_batch_back(tmp_path, capsys, monkeypatch):
    import subprocess

    from workflow.campaign.dispatcher import Dispatcher

    setup(tmp_path)
    jobs_dir = tmp_path / "runs" / "faults" / "jobs"
    real, seen, mounted = Dispatcher.record, [], []

    def record(self, *args):
        real(self, *args)
        seen.append(1)
        if len(seen) == 4:  # cycle 0 done: the jobs filesystem goes read-only
            mounted.append(_read_only_bind(jobs_dir))

    monkeypatch.setattr(Dispatcher, "record", record)
    try:
        rc, out, err = run(tmp_path, capsys)
        if not mounted[0]:
            pytest.skip("a read-only bind mount needs root and mount(8)")
        assert rc == 3, out + err
        one_line_error(err, "cycle 1: all 3 job(s) failed (io_error 3")
        assert "Read-only file system" in err and "back in the pool" in err
        s = store(tmp_path)
        returned = [j for j in s.jobs() if j["state"] == "returned"]
        assert len(returned) == 3 and {j["cycle"] for j in returned} == {1}
        assert "cycle 2" not in out  # no cycle spent after the stop
    finally:
        if mounted and mounted[0]:
            subprocess.run(["umount", str(jobs_dir)], check=True)
    monkeypatch.undo()
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0, out
    s = store(tmp_path)
    assert_store_consistent(s)
    assert len([j for j in s.jobs() if j["state"] == "done"]) == 4 + 3 + 3  # the full budget, after the fix
    assert {c["cycle"] for c in s.cycles()} == {0, 1, 2, 3}  # cycle 1 given back; cycles 2 and 3 replace it


def test_an_oracle_holding_none_of_the_pools_ids_is_refused_before_anything_runs(tmp_path, capsys):
    setup(tmp_path, oracle=ORACLE.replace("\nQ", "\nX"))
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, "none of the pool's 30 ids is in it")
    assert not store(tmp_path).jobs()


def test_a_store_made_before_returned_jobs_existed_gains_the_state_and_keeps_its_rows(tmp_path):
    """The jobs table's CHECK is written from JobState: an older store's table is rebuilt, every row kept."""
    from workflow.campaign.store import JobState

    path = tmp_path / "campaign.sqlite"
    s = Store(path)
    s.save_pool([("A", 1, "*CC*", "*CC*", None)], [])
    [job] = s.record_selection(0, ["A"], "random", [None], None, None, 0, job_dir_for=lambda j, p: f"/x/{j}")
    s.fail_job(job, "timeout", "dispatch", "lost")
    old = [x for x in JobState if x != JobState.RETURNED]
    sql = s.db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
    s.db.execute("PRAGMA foreign_keys=OFF")
    with s.db:  # the table as a store of the last release made it
        s.db.execute(sql.replace("CREATE TABLE jobs", "CREATE TABLE jobs_old").replace(
            ", 'returned'", ""))
        s.db.execute("INSERT INTO jobs_old SELECT * FROM jobs")
        s.db.execute("DROP TABLE jobs")
        s.db.execute("ALTER TABLE jobs_old RENAME TO jobs")
    s.close()
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses the new state
        with sqlite3.connect(path) as db:
            db.execute("UPDATE jobs SET state = 'returned'")
    assert len(old) == 3
    s = Store(path)
    s.return_jobs([job], "test")
    [row] = s.jobs()
    assert row["state"] == "returned" and row["failure_kind"] == "timeout" and "lost [returned" in row[
        "failure_message"]
    assert s.submitted_polymers() == set()


# --- issue 40, case 13: a campaign moved, copied or extended ----------------------------------------------------
def test_a_copied_campaign_folder_resumes_elsewhere_with_more_cycles_and_leaves_the_original_alone(tmp_path, capsys):
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    setup(a)
    assert run(a, capsys)[0] == 0
    before = [dict(j) for j in store(a).jobs()]
    shutil.copytree(a, b)
    write(b / "c.yaml", CAMPAIGN.replace("cycles: 2", "cycles: 3"))  # one more cycle, in the copy
    rc, out, err = run(b, capsys)
    assert rc == 0, err
    assert "cycles 2 -> 3" in out
    s = store(b)
    assert_store_consistent(s)
    assert max(c["cycle"] for c in s.cycles()) == 3 and len(s.jobs()) == 4 + 3 * 3
    assert all(Path(j["job_dir"]).is_relative_to(b / "runs" / "faults" / "jobs") for j in s.jobs())
    assert [dict(j) for j in store(a).jobs()] == before  # the original is untouched
    write(b / "c.yaml", CAMPAIGN.replace("cycles: 2", "cycles: 3").replace("seed: 4", "seed: 5"))
    rc, _, err = run(b, capsys)
    assert rc == 2
    one_line_error(err, "different settings (seed)")
    assert "remove" not in err and "delete" not in err


@pytest.mark.slow  # real processes
def test_two_campaigns_sharing_a_runs_directory_both_finish(tmp_path):
    """Issue 40, case 3, end to end with real processes: one campaign featurizes (writing the shared descriptor
    cache) while another starts beside it in the same runs directory; both finish, each with its own store."""
    import subprocess
    import sys
    import time

    big = [f"*CC(*){'C' * k}" for k in range(1, 31)] + [f"*CC(*)C(=O)O{'C' * k}" for k in range(1, 31)]
    write(tmp_path / "big.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(big)))
    write(tmp_path / "small.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES[:12])))
    oracle = "id,refractive_index,Cp\n" + "\n".join(f"Q{i:02d},{1.4 + 0.01 * (i % 7)},{1000 + 37 * ((i * 5) % 11)}"
                                                   for i in range(60))
    write(tmp_path / "oracle.csv", oracle)
    for name, pool in (("b", "big.csv"), ("small", "small.csv")):
        write(tmp_path / f"{name}.yaml", CAMPAIGN.replace("name: faults", f"name: {name}").replace("pool.csv", pool)
              .replace("{table: oracle.csv}", "{table: oracle.csv, duration_s: [0.5, 1]}"))
    procs = {}
    for name in ("b", "small"):
        procs[name] = subprocess.Popen([sys.executable, "-m", "workflow.cli", "run", str(tmp_path / f"{name}.yaml"),
                                        "--runs", str(tmp_path / "re")], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
        time.sleep(4)  # b is featurizing when small starts
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {out}"
        s = Store(store_path(tmp_path / "re", name), readonly=True)
        assert len([j for j in s.jobs() if j["state"] == "done"]) == 4 + 3 + 3, name
    kept = sqlite3.connect(tmp_path / "re" / "descriptor_cache.sqlite").execute(
        "SELECT COUNT(DISTINCT smiles) FROM descriptors").fetchone()[0]
    assert kept == len(set(big) | set(SMILES[:12]))
