"""Running a campaign one leaves on a cluster (issue 39): the log, giving failures back, the QM dataset."""

import re

import pytest

from tests.conftest import write
from tests.test_campaign import ORACLE, assert_store_consistent
from tests.test_faults import CAMPAIGN, one_line_error, run, setup, store
from workflow.cli import main

STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|DEBUG) +workflow\.[a-z_.]+: "


def test_campaign_log_holds_every_submission_ingestion_and_failure_with_a_timestamp(tmp_path, capsys):
    setup(tmp_path, oracle=ORACLE.replace("\nQ05,", "\nX05,"))  # Q05 is not in the oracle: its job fails
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0
    lines = (tmp_path / "runs" / "faults" / "campaign.log").read_text().splitlines()
    assert lines and all(re.match(STAMP, ln) for ln in lines), lines[:3]
    text = "\n".join(lines)
    s = store(tmp_path)
    for j in s.jobs():  # every job's submission and outcome, with its polymer id
        assert re.search(rf"cycle {j['cycle']}: submitted .*\b{j['polymer_id']}\b", text)
        outcome = "done, " if j["state"] == "done" else "FAILED"
        assert re.search(rf"(INFO|WARNING) +workflow\.campaign\.dispatcher:   {j['polymer_id']}: {outcome}", text)
    if any(j["polymer_id"] == "Q05" for j in s.jobs()):
        assert re.search(r"WARNING +workflow\.campaign\.dispatcher:   Q05: FAILED \(invalid_input", text)
    assert "cycle 0: submitted" in out  # the terminal as before
    rc, out, _ = run(tmp_path, capsys, "--quiet")  # nothing left to do: the terminal stays silent
    assert rc == 0 and out == ""
    assert "done; store at" in (tmp_path / "runs" / "faults" / "campaign.log").read_text().split("\n")[-2]


def _timeout_campaign(tmp_path):
    """An oracle campaign whose first polymer's worker is lost three times (``timeout``, 3 attempts) and whose second
    polymer is not in the oracle (``invalid_input``)."""
    from tests.test_faults import Unreliable, lost
    from workflow.campaign.config import load_campaign
    from workflow.campaign.engine import CampaignRunner
    from workflow.dispatch.evaluators import ParslEvaluator
    from workflow.dispatch.profiles import load_profile
    from workflow.job.presets import SMOKE

    camp = load_campaign(setup(tmp_path))
    ids = [pid for pid, _ in CampaignRunner(camp, tmp_path / "plan", dry_run=True).plan()[2]]
    parsl_ev = ParslEvaluator(load_profile("local"), SMOKE, tmp_path)

    class Lost(Unreliable):
        def failure(self, exc):
            return parsl_ev.failure(exc)

    from workflow.job import JobFailure

    refused = JobFailure("invalid_input", "oracle", "id is not in the oracle table")
    CampaignRunner(camp, tmp_path / "runs").run(Lost(camp.oracle, {ids[0]: [lost("WorkerLost")] * 3,
                                                                   ids[1]: [refused]}))
    return ids[0], ids[1]


def test_retry_gives_a_timeout_back_and_the_next_run_runs_it_first(tmp_path, capsys):
    lost_one, refused = _timeout_campaign(tmp_path)
    jobs = {j["polymer_id"]: j for j in store(tmp_path).jobs()}
    assert jobs[lost_one]["failure_kind"] == "timeout" and jobs[refused]["failure_kind"] == "invalid_input"
    runs = str(tmp_path / "runs")
    capsys.readouterr()
    assert main(["retry", "faults", "--runs", runs]) == 0
    said = capsys.readouterr().out
    assert "1 polymer(s) given back (timeout 1)" in said and "cycle 3" in said
    write(tmp_path / "c.yaml", CAMPAIGN.replace("cycles: 2", "cycles: 3"))  # and one more cycle
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0 and "resuming 1 unfinished job(s)" in out and f"{lost_one}: done" in out
    s = store(tmp_path)
    assert_store_consistent(s)
    mine = [j for j in s.jobs() if j["polymer_id"] == lost_one]
    assert [j["state"] for j in mine] == ["returned", "done"] and mine[0]["job_dir"] == mine[1]["job_dir"]
    assert mine[1]["cycle"] == 3 and max(c["cycle"] for c in s.cycles()) == 4  # the retry spent no cycle
    assert [j["state"] for j in s.jobs() if j["polymer_id"] == refused] == ["failed"]  # permanent: kept
    capsys.readouterr()
    assert main(["export", "faults", "--runs", runs, "--format", "csv", "--out", str(tmp_path / "e.csv")]) == 0
    import pandas as pd

    frame = pd.read_csv(tmp_path / "e.csv")
    assert sorted(frame[frame["polymer_id"] == lost_one]["status"]) == ["done", "returned"]  # history kept


def test_retry_refuses_a_permanent_failure_unless_its_kind_is_named_and_bad_input_changes_nothing(tmp_path, capsys):
    _, refused = _timeout_campaign(tmp_path)
    runs = str(tmp_path / "runs")
    before = [dict(j) for j in store(tmp_path).jobs()]
    for argv, needle in ((["--polymer", refused], "failed with invalid_input (permanent"),
                         (["--kind", "timeot"], "--kind timeot: no such failure kind"),
                         (["--polymer", "NOPE"], "--polymer NOPE: campaign faults has no job"),
                         ([], None)):
        capsys.readouterr()
        rc = main(["retry", "faults" if needle or argv else "nosuch", "--runs", runs, *argv])
        err = capsys.readouterr().err
        assert rc == 2
        one_line_error(err, needle or "no campaign nosuch")
        assert [dict(j) for j in store(tmp_path).jobs()] == before  # nothing changed
    assert main(["retry", "faults", "--runs", runs, "--kind", "invalid_input", "--polymer", refused]) == 0
    assert [j["state"] for j in store(tmp_path).jobs() if j["polymer_id"] == refused] == ["returned", "submitted"]


def test_qm_dataset_bad_paths_are_one_line_and_an_oracle_campaign_has_no_molecules(tmp_path, capsys):
    setup(tmp_path)
    assert run(tmp_path, capsys)[0] == 0
    runs = str(tmp_path / "runs")
    write(tmp_path / "a-file", "x")
    (tmp_path / "a-dir.extxyz").mkdir()
    for target, needle in (("qm.txt", "use a .extxyz, .xyz or .db name"),
                           ("a-dir.extxyz", "is a directory"),
                           ("a-file/qm.extxyz", "a-file")):
        capsys.readouterr()
        assert main(["export", "faults", "--runs", runs, "--qm-dataset", str(tmp_path / target)]) == 2
        one_line_error(capsys.readouterr().err, needle)
        assert not (tmp_path / "runs" / "faults" / "export.parquet").exists()  # checked before anything is written
    capsys.readouterr()
    assert main(["export", "faults", "--runs", runs, "--qm-dataset", str(tmp_path / "qm.extxyz")]) == 0
    said = capsys.readouterr().out
    assert "wrote 0 QM molecule(s)" in said and "10 finished job(s) have none" in said


@pytest.mark.slow  # real processes
def test_status_watch_follows_a_running_campaign_and_ends_with_it(tmp_path):
    import subprocess
    import sys
    import time

    setup(tmp_path, campaign=CAMPAIGN.replace("cycles: 2", "cycles: 1").replace(
        "{table: oracle.csv}", "{table: oracle.csv, duration_s: [1.5, 1.5], threads: 1}"))
    cli = [sys.executable, "-m", "workflow.cli"]
    driver = subprocess.Popen([*cli, "run", str(tmp_path / "c.yaml"), "--runs", str(tmp_path / "runs")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    t0 = time.time()
    while not (tmp_path / "runs" / "faults" / "campaign.sqlite").exists():
        assert driver.poll() is None and time.time() - t0 < 120
        time.sleep(0.1)
    watch = subprocess.run([*cli, "status", "faults", "--runs", str(tmp_path / "runs"), "--watch", "--every", "0.5"],
                           capture_output=True, text=True, timeout=300)
    assert driver.wait(timeout=60) == 0
    assert watch.returncode == 0, watch.stderr
    out = watch.stdout
    assert out.count("--watch (Ctrl-C ends it)") >= 2 and "running: Q" in out  # refreshed while jobs ran
    assert out.rstrip().endswith("no job running and no driver: the watch ends")
    assert "jobs: done 7" in out  # the last view is the finished campaign


@pytest.mark.integration
def test_a_budget_stops_the_campaign_before_it_is_crossed_and_status_shows_the_spending(tmp_path, capsys):
    """Issue 39, item 1: each look-up costs its simulated second; 7.5 core-seconds allow the initial 4 and cycle
    1's 3, not cycle 2's."""
    budget = 7.5 / 3600
    setup(tmp_path, campaign=CAMPAIGN.replace("{table: oracle.csv}", "{table: oracle.csv, duration_s: [1, 1]}")
          + f"budget: {{core_hours: {budget}}}\n")
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0
    s = store(tmp_path)
    assert len(s.jobs()) == 4 + 3 and "cycle 2" not in out.replace("cycle 2's", "")
    assert "budget: cycle 2's 3 job(s), predicted 0.0008333 core-hours" in out and "not submitted" in out
    capsys.readouterr()
    assert main(["status", "faults", "--runs", str(tmp_path / "runs")]) == 0
    said = capsys.readouterr().out
    assert f"core-hours spent by finished jobs: 0.002 of a {budget:g} core-hour budget" in said
    assert "cycle 0: oracle 0.001" in said and "cycle 1: oracle 0.001" in said
    write(tmp_path / "c.yaml", (tmp_path / "c.yaml").read_text().replace(str(budget), "1"))  # raised: it goes on
    rc, out, _ = run(tmp_path, capsys)
    assert rc == 0 and len(store(tmp_path).jobs()) == 4 + 3 + 3


@pytest.mark.parametrize("value, needle", [("0", "key 'budget.core_hours'"), ("-2", "key 'budget.core_hours'"),
                                           ("lots", "key 'budget.core_hours'"), (".nan", "key 'budget.core_hours'")])
def test_a_budget_that_is_not_a_positive_number_is_refused(tmp_path, capsys, value, needle):
    setup(tmp_path, campaign=CAMPAIGN + f"budget: {{core_hours: {value}}}\n")
    rc, _, err = run(tmp_path, capsys)
    assert rc == 2
    one_line_error(err, needle)
    assert not (tmp_path / "runs" / "faults" / "campaign.sqlite").exists()


def test_the_dry_run_prints_each_picks_predicted_cost_and_warns_of_the_walltime(tmp_path, capsys):
    """Issue 39, item 1: per polymer, core-hours per stage and the wall time on the profile's cores; the batch
    total; the polymers predicted to outlast the profile's walltime named, with what to change."""
    setup(tmp_path, campaign=CAMPAIGN.replace("oracle: {table: oracle.csv}\n", "preset: smoke\n").replace(
        "Cp: maximize", "abbe_number: maximize"))
    write(tmp_path / "short.yaml", "name: short\nscheduler: local\ncores_per_job: 1\ncores_per_node: 2\n"
                                   "walltime: '00:00:30'\n")
    capsys.readouterr()
    rc = main(["run", str(tmp_path / "c.yaml"), "--runs", str(tmp_path / "runs"), "--dry-run",
               "--profile", str(tmp_path / "short.yaml")])
    out = capsys.readouterr().out
    assert rc == 0, out
    table = out.split("predicted cost", 1)[1]
    assert "the preset's prior alone" in table and "charges" in table and "wall" in table
    rows = [ln.split() for ln in table.splitlines()[2:6]]
    assert len(rows) == 4 and all(r[0].startswith("Q") and float(r[4]) > 0 for r in rows)  # the 4 initial picks
    assert all(abs(float(r[1]) + float(r[2]) + float(r[3]) - float(r[4])) < 0.0015 for r in rows)
    assert "batch: " in table and "core-hours" in table
    assert "predicted to outlast the profile's walltime 00:00:30" in table and "raise walltime" in table
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_what_ends_a_run_is_in_its_log_and_said_once_on_the_terminal(tmp_path, capsys):
    setup(tmp_path)
    (tmp_path / "runs" / "faults").mkdir(parents=True)
    (tmp_path / "runs" / "faults" / "jobs").write_text("a file where the job directories go")
    rc, out, err = run(tmp_path, capsys)
    assert rc == 3 and "all 4 job(s) failed" in err and "all 4 job(s) failed" not in out
    logged = (tmp_path / "runs" / "faults" / "campaign.log").read_text()
    assert re.search(r"ERROR +workflow\.cli: CampaignStopped: cycle 0: all 4 job\(s\) failed", logged)
