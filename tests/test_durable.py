"""Durable campaigns: kill -9 of the driver at several points, resume, and compare with an
uninterrupted run; result files written while the driver was away; corrupt results; one driver."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from surrogate.strategies import make_strategy
from tests.conftest import write
from tests.test_campaign import ORACLE, SMILES, assert_store_consistent
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.dispatch.evaluators import OracleEvaluator
from workflow.job import grant_retry

CAMPAIGN = ("name: durable\npool: pool.csv\nobjectives: {refractive_index: maximize, Cp: maximize}\n"
            "initial_size: 6\nbatch_size: 4\ncycles: 4\nseed: 11\n"
            "oracle: {table: oracle.csv, duration_s: [DLO, DHI]}\n")


def setup(tmp_path: Path, lo: float, hi: float) -> Path:
    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    write(tmp_path / "oracle.csv", ORACLE)
    return write(tmp_path / "c.yaml", CAMPAIGN.replace("DLO", str(lo)).replace("DHI", str(hi)))


def driver(campaign: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workflow.cli", "run", str(campaign), "--runs", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def snapshot(runs: Path) -> tuple[list, list]:
    path = store_path(runs, "durable")
    if not path.is_file():
        return [], []
    store = Store(path, readonly=True)
    try:
        return [dict(j) for j in store.jobs()], [dict(c) for c in store.cycles()]
    except Exception:  # tables not created yet
        return [], []
    finally:
        store.close()


def wait_for(runs: Path, condition, proc: subprocess.Popen, limit: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < limit:
        jobs, cycles = snapshot(runs)
        if condition(jobs, cycles):
            return
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before the kill point:\n{proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("kill point never reached")


def picks_by_cycle(runs: Path) -> dict[int, list[str]]:
    _, cycles = snapshot(runs)
    out: dict[int, list[str]] = {}
    for c in cycles:
        out.setdefault(c["cycle"], []).append(c["polymer_id"])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (no simulated durations: the results do not depend on them)."""
    tmp = tmp_path_factory.mktemp("reference")
    camp = load_campaign(setup(tmp, 0.0, 0.0))
    CampaignRunner(camp, tmp / "runs").run(OracleEvaluator(camp.oracle))
    return picks_by_cycle(tmp / "runs")


@pytest.mark.slow  # a real driver killed four times; CI runs it in its second step
def test_kill_9_at_several_points_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
    campaign = setup(tmp_path, 0.3, 1.2)
    runs = tmp_path / "runs"
    kill_points = [
        ("right after the initial design is submitted", lambda j, c: len(j) >= 6),
        ("while cycle 1's jobs run", lambda j, c: any(x["cycle"] == 1 for x in j)
         and any(x["state"] == "submitted" for x in j)),
        ("as cycle 2's results are being written", lambda j, c: any(x["cycle"] == 2 and x["state"] == "done" for x in j)),
        ("during cycle 3's selection (cycle 2 all done)", lambda j, c: sum(x["cycle"] == 2 and x["state"] != "submitted"
                                                                            for x in j) == 4),
    ]
    for label, condition in kill_points:
        proc = driver(campaign, runs)
        wait_for(runs, condition, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        jobs, _ = snapshot(runs)
        polymers = [x["polymer_id"] for x in jobs]
        assert len(polymers) == len(set(polymers)), f"after kill {label!r}: a polymer was submitted twice"
    final = driver(campaign, runs)
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, out
    store = Store(store_path(runs, "durable"), readonly=True)
    assert_store_consistent(store)
    assert picks_by_cycle(runs) == reference  # same selections, cycle by cycle
    assert len(store.results()) == sum(len(v) for v in reference.values()) == 22


@pytest.mark.integration
def test_result_written_while_the_driver_was_away_is_ingested_and_corrupt_ones_are_not(tmp_path):
    campaign = setup(tmp_path, 5.0, 5.0)  # slow jobs: the driver is killed while all are running
    runs = tmp_path / "runs"
    proc = driver(campaign, runs)
    wait_for(runs, lambda j, c: len(j) == 6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    jobs, _ = snapshot(runs)
    finished, corrupt = jobs[0], jobs[1]
    Path(finished["job_dir"]).mkdir(parents=True, exist_ok=True)
    Path(finished["job_dir"], "record.json").write_text(json.dumps(
        {"refractive_index": 1.777, "Cp": 1234.0, "note": "written by the job after the driver died"}))
    Path(corrupt["job_dir"]).mkdir(parents=True, exist_ok=True)
    Path(corrupt["job_dir"], "record.json").write_text('{"refractive_index": 1.4, "Cp"')  # truncated
    camp = load_campaign(campaign)  # resume with instant look-ups (the durations only simulate slow jobs)
    CampaignRunner(camp, runs).run(OracleEvaluator(camp.oracle.model_copy(update={"duration_s": (0.0, 0.0)})))
    store = Store(store_path(runs, "durable"), readonly=True)
    res = {r["polymer_id"]: json.loads(r["properties"]) for r in store.results()}
    assert res[finished["polymer_id"]]["note"] == "written by the job after the driver died"
    assert res[finished["polymer_id"]]["refractive_index"] == 1.777
    assert "note" not in res[corrupt["polymer_id"]]  # re-evaluated by the oracle, not read from the broken file
    assert_store_consistent(store)


@pytest.mark.integration
def test_a_second_driver_refuses_while_the_first_runs_and_status_reads_meanwhile(tmp_path):
    campaign = setup(tmp_path, 30.0, 30.0)  # the first driver waits on its jobs throughout
    runs = tmp_path / "runs"
    first = driver(campaign, runs)
    try:
        wait_for(runs, lambda j, c: len(j) >= 6, first)
        second = subprocess.run([sys.executable, "-m", "workflow.cli", "run", str(campaign), "--runs", str(runs)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "already being run by pid" in second.stderr
        status = subprocess.run([sys.executable, "-m", "workflow.cli", "status", "durable", "--runs", str(runs)],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "submitted 6" in status.stdout, status.stdout + status.stderr
    finally:
        first.kill()
        first.wait()


class FlakyOracle(OracleEvaluator):
    """The oracle, but some polymers' jobs fail: a block that hits its walltime, bad input, and cells that
    need ``unequilibrated[id]`` more sampling runs than the preset grants (read from the job directory,
    as the property job does)."""

    def __init__(self, settings, timeouts: dict[str, int], invalid: set[str], unequilibrated: dict[str, int] = {}):
        super().__init__(settings)
        self.timeouts, self.invalid, self.calls = dict(timeouts), invalid, {}
        self.unequilibrated = dict(unequilibrated)

    def prepare_retry(self, job, kind):
        grant_retry(job.job_dir, kind)  # as the property job's evaluator does

    def submit(self, job):
        from concurrent.futures import Future

        from workflow.job import JobFailure
        from workflow.job.stages import extra_sampling_runs

        polymer_id = job.polymer_id
        self.calls[polymer_id] = self.calls.get(polymer_id, 0) + 1
        fut = Future()
        if extra_sampling_runs(job.job_dir) < self.unequilibrated.get(polymer_id, 0):
            fut.set_exception(JobFailure("not_equilibrated", "analysis", "RadonPy's equilibrium check failed"))
        elif polymer_id in self.invalid:
            fut.set_exception(JobFailure("invalid_input", "prep", "RDKit cannot parse it"))
        elif self.timeouts.get(polymer_id, 0) >= self.calls[polymer_id]:
            fut.set_exception(JobFailure("timeout", "md", "the block's walltime ended during sampling"))
        else:
            return super().submit(job)
        return fut


def test_failure_policy_retries_per_kind_and_gives_up(tmp_path):
    camp = load_campaign(setup(tmp_path, 0.0, 0.0)).model_copy(update={"cycles": 1})
    plan = CampaignRunner(camp, tmp_path / "plan", dry_run=True).plan()[2]  # this seed's initial design
    once, always, bad, slow = plan[0][0], plan[1][0], plan[2][0], plan[3][0]
    camp = camp.model_copy(update={"retries": camp.retries | {"not_equilibrated": 3}})
    ev = FlakyOracle(camp.oracle, timeouts={once: 1, always: 99}, invalid={bad}, unequilibrated={slow: 2})
    CampaignRunner(camp, tmp_path / "runs").run(ev)
    store = Store(store_path(tmp_path / "runs", "durable"), readonly=True)
    jobs = {j["polymer_id"]: j for j in store.jobs()}
    assert jobs[once]["state"] == "done" and jobs[once]["attempts"] == 2 and ev.calls[once] == 2
    assert jobs[always]["state"] == "failed" and jobs[always]["failure_kind"] == "timeout"
    assert jobs[always]["attempts"] == 3 == ev.calls[always]  # default: 3 attempts for a timeout
    assert jobs[bad]["state"] == "failed" and ev.calls[bad] == 1  # invalid input is never retried
    # not_equilibrated: each retry grants the job one more sampling run; the third attempt has two and passes
    assert jobs[slow]["state"] == "done" and jobs[slow]["attempts"] == 3 == ev.calls[slow]
    assert json.loads((Path(jobs[slow]["job_dir"]) / "retry.json").read_text()) == {"not_equilibrated": 2}
    assert_store_consistent(store)  # failed polymers are not selected again


@pytest.mark.slow  # simulated job durations of 2-6 s; CI runs it in its second step
def test_async_mode_keeps_the_slots_busy_and_never_picks_twice(tmp_path):
    camp = load_campaign(setup(tmp_path, 2.0, 6.0)).model_copy(
        update={"mode": "async", "in_flight": 3, "initial_size": 3, "batch_size": 3, "cycles": 3,
                "strategy": make_strategy("ehvi-topk")})
    CampaignRunner(camp, tmp_path / "runs").run(
        OracleEvaluator(camp.oracle))
    store = Store(store_path(tmp_path / "runs", "durable"), readonly=True)
    jobs = store.jobs()
    polymers = [j["polymer_id"] for j in jobs]
    assert len(jobs) == 12 and len(set(polymers)) == 12
    cycles = store.cycles()
    assert [c["cycle"] for c in cycles] == [0, 0, 0, *range(1, 10)]  # the initial design, then one pick at a time
    # with jobs pending, ehvi-topk picks through the greedy path and says so (it may add that the hypervolume
    # saturated)
    base = [c["strategy"].split(" (hypervolume saturated")[0] for c in cycles]
    pending = "ehvi-topk (jobs pending: by qNEHVI)"
    assert all(s in (pending, "random (only 1 result(s) to fit on)") for s, c in zip(base, cycles) if c["cycle"] > 0)
    assert base[-1] == pending
    # slots are refilled one by one while the others still run (batch mode would wait for all three)
    ends = sorted(j["ended_at"] for j in jobs)
    submits = sorted(j["submitted_at"] for j in jobs)
    assert all(submits[3 + k] >= ends[k] - 1e-6 for k in range(9))  # never more than 3 in flight
    overlapped = sum(any(j["submitted_at"] < submits[3 + k] < j["ended_at"] for j in jobs) for k in range(9))
    assert overlapped >= 6, overlapped
    busy = sum(j["ended_at"] - j["started_at"] for j in jobs)
    utilisation = busy / (3 * (max(ends) - min(j["started_at"] for j in jobs)))
    print(f"async utilisation {utilisation:.2f}")
    assert utilisation > 0.5
