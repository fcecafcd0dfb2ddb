"""The physics-informed surrogate (Lorentz-Lorenz over a density GP and the QM) and the cost-aware plan (issue 37)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from surrogate.multifidelity import JOB, MD, QM, StageCosts, plan_cycle
from surrogate.physics import LL_K, Fidelities, RefractiveIndexModel, index_from, index_moments, product_moments
from workflow.job.optics import index_from_phi, lorentz_lorenz

D = torch.float64


def test_ll_constant_is_radonpys_lorentz_lorenz():
    # polystyrene-like: alpha 12.9 A^3, M 104.15 g/mol, rho 1.05 g/cm^3
    n, _ = index_moments(torch.tensor(LL_K * 1.05 * 12.9 / 104.15, dtype=D), torch.tensor(0.0, dtype=D))
    assert float(n) == pytest.approx(lorentz_lorenz(12.9, 1.05, 104.15), abs=1e-9)


def test_index_moments_against_a_hand_computation():
    """Second-order mean and first-order sd, with the derivatives taken by finite differences of optics.index_from_phi."""
    rho, rho_sd, s, s_sd = 1.05, 0.03, 0.124, 0.006
    phi = LL_K * rho * s
    var = LL_K**2 * (rho**2 * s_sd**2 + s**2 * rho_sd**2 + rho_sd**2 * s_sd**2)
    h = 1e-4
    d1 = (index_from_phi(phi + h) - index_from_phi(phi - h)) / (2 * h)
    d2 = (index_from_phi(phi + h) - 2 * index_from_phi(phi) + index_from_phi(phi - h)) / h**2
    hand_mean, hand_sd = index_from_phi(phi) + 0.5 * d2 * var, abs(d1) * math.sqrt(var)
    t = lambda x: torch.tensor([x], dtype=D)  # noqa: E731
    mean, sd = index_from(t(rho), t(rho_sd), t(s), t(s_sd))
    assert float(mean) == pytest.approx(hand_mean, abs=1e-7)
    assert float(sd) == pytest.approx(hand_sd, rel=1e-5)
    # and against sampling the two inputs (the approximation's own error: well below a measurement's)
    g = torch.Generator().manual_seed(0)
    r = rho + rho_sd * torch.randn(400_000, generator=g, dtype=D)
    a = s + s_sd * torch.randn(400_000, generator=g, dtype=D)
    n = torch.sqrt((1 + 2 * LL_K * r * a) / (1 - LL_K * r * a))
    assert float(mean) == pytest.approx(float(n.mean()), abs=2e-4)
    assert float(sd) == pytest.approx(float(n.std()), rel=0.03)


def test_product_moments_are_exact():
    g = torch.Generator().manual_seed(1)
    a = 2.0 + 0.5 * torch.randn(1_000_000, generator=g, dtype=D)
    b = -1.0 + 0.3 * torch.randn(1_000_000, generator=g, dtype=D)
    mean, var = product_moments(*(torch.tensor(v, dtype=D) for v in (2.0, 0.5, -1.0, 0.3)))
    assert float(mean) == -2.0 and float(var) == pytest.approx(4 * 0.09 + 1 * 0.25 + 0.25 * 0.09)
    assert float((a * b).var()) == pytest.approx(float(var), rel=0.01)


def _pool(n: int = 40, seed: int = 0):
    """A smooth synthetic pool: density and s vary along the descriptor's first coordinates."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 5, generator=g, dtype=D)
    density = 0.9 + 0.4 * X[:, 0]
    s = 0.10 + 0.05 * X[:, 1]
    n_true = torch.sqrt((1 + 2 * LL_K * density * s) / (1 - LL_K * density * s))
    cp = 1000 + 500 * X[:, 2]
    return X, density, s, n_true, cp


def test_model_is_exact_where_measured_and_density_limited_where_screened():
    X, density, s, n_true, cp = _pool()
    md_rows, qm_rows = torch.arange(0, 15), torch.arange(0, 30)
    data = Fidelities(qm_rows=qm_rows, s=s[qm_rows], md_rows=md_rows, density=density[md_rows],
                      md_values={"refractive_index": n_true[md_rows], "Cp": cp[md_rows]})
    model = RefractiveIndexModel(X, data, ["refractive_index", "Cp"])
    rows = torch.arange(40)
    mean, sd = model.predict(rows)
    # measured: the values themselves, no spread
    assert torch.equal(mean[:15, 0], n_true[:15]) and torch.equal(sd[:15], torch.zeros(15, 2, dtype=D))
    # screened (QM, no MD): s exact, so n's sd is the density's through d n / d rho = n'(phi) K s
    rho_mean, rho_sd = model._fitted(rows[15:30], md_rows, density[md_rows])
    phi = LL_K * rho_mean * s[15:30]
    h = 1e-5
    dn = torch.tensor([(index_from_phi(float(p) + h) - index_from_phi(float(p) - h)) / (2 * h) for p in phi], dtype=D)
    assert torch.allclose(sd[15:30, 0], dn * LL_K * s[15:30] * rho_sd, rtol=1e-4)
    # not screened: the polarizability's GP adds its spread
    assert sd[30:, 0].mean() > sd[15:30, 0].mean()
    # and the composite is close to the truth on this smooth pool
    assert (mean[15:, 0] - n_true[15:]).abs().max() < 0.02


def test_fidelities_refuse_md_without_qm():
    with pytest.raises(ValueError, match="MD but no QM"):
        Fidelities(qm_rows=torch.tensor([0, 1]), s=torch.ones(2, dtype=D), md_rows=torch.tensor([2]),
                   density=torch.ones(1, dtype=D), md_values={})


def test_plan_prices_a_screen_by_what_it_decides():
    """Hand-built outcomes: the value and the expected cost of each action, and the budget."""
    from surrogate.acquisition import ehvi

    costs = StageCosts(qm=1.0, md=9.0)
    Y_front = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=D)
    ref = torch.tensor([-1.0, -1.0], dtype=D)
    rows = torch.tensor([10, 11, 12, 13, 14])
    screened = torch.tensor([True, True, False, False, False])
    good, poor, fair = [1.0, 1.0], [-0.5, -0.5], [0.5, 0.5]
    mean = torch.tensor([good, [0.2, 0.2], fair, fair, fair], dtype=D)
    std = torch.full((5, 2), 0.1, dtype=D)
    # two nodes of equal weight: row 12's screen decides (good or poor), row 13's does not (good either way), row
    # 14's tells nothing (fair at both: the QM does not inform its objectives)
    after_mean = torch.stack([torch.tensor([good, [0.2, 0.2], good, good, fair], dtype=D),
                              torch.tensor([good, [0.2, 0.2], poor, good, fair], dtype=D)])
    after_std = torch.full((2, 5, 2), 0.1, dtype=D)
    weights = torch.tensor([0.5, 0.5], dtype=D)
    plan = plan_cycle(rows, screened, mean, std, after_mean, after_std, weights, Y_front, ref, costs, budget=100.0)
    e_good = float(ehvi(torch.tensor([good], dtype=D), std[:1], Y_front, ref)[0])
    e_poor = float(ehvi(torch.tensor([poor], dtype=D), std[:1], Y_front, ref)[0])
    e_row11 = float(ehvi(mean[1:2], std[1:2], Y_front, ref)[0])
    assert e_poor < 1e-6 < e_row11 < e_good
    # tau is the value per MD cost of the last MD the budget buys among the screened (both: row 11's)
    score = dict(zip(plan.rows, plan.scores))
    assert score[10] == pytest.approx(e_good / 9) and score[11] == pytest.approx(e_row11 / 9)
    # row 12: MD only after the good outcome: value e_good / 2 for 1 + 9 / 2; row 13: MD always: e_good for 10
    assert score[12] == pytest.approx(0.5 * e_good / 5.5) and score[13] == pytest.approx(e_good / 10)
    # row 14: its screen decides nothing, so its score ties with the whole job's and the whole job is taken
    e_fair = float(ehvi(mean[4:5], std[4:5], Y_front, ref)[0])
    assert score[14] == pytest.approx(e_fair / 10) and plan.stages[plan.rows.index(14)] == JOB
    assert plan.rows == [10, 13, 12, 14, 11] and plan.stages == [MD, QM, QM, JOB, MD] and plan.cost == 30.0
    # the budget: row 10's MD (9) and the two screens fit in 11; row 11's MD does not
    tight = plan_cycle(rows, screened, mean, std, after_mean, after_std, weights, Y_front, ref, costs, budget=11.0)
    assert tight.rows == [10, 13, 12] and tight.cost == 11.0
    # below an MD job: screens only
    small = plan_cycle(rows, screened, mean, std, after_mean, after_std, weights, Y_front, ref, costs, budget=3.0)
    assert small.of(MD) == [] and small.of(QM) == [13, 12] and small.cost == 2.0


def test_screen_outcomes_fix_the_polarizability():
    """After a screen, n spreads by the density alone; at the central node it is the density-only moments."""
    from surrogate.multifidelity import screen_nodes

    X, density, s, n_true, cp = _pool()
    md_rows, qm_rows = torch.arange(0, 15), torch.arange(0, 25)
    data = Fidelities(qm_rows=qm_rows, s=s[qm_rows], md_rows=md_rows, density=density[md_rows],
                      md_values={"refractive_index": n_true[md_rows], "Cp": cp[md_rows]})
    model = RefractiveIndexModel(X, data, ["refractive_index", "Cp"])
    rows = torch.arange(15, 40)
    nodes, weights = screen_nodes(5)
    assert float(weights.sum()) == pytest.approx(1.0) and float((weights * nodes**2).sum()) == pytest.approx(1.0)
    mean, sd, after_mean, after_sd = model.predict_with_screens(rows, nodes)
    p_mean, p_sd = model.predict(rows)
    assert torch.allclose(mean, p_mean) and torch.allclose(sd, p_sd)
    # screened rows (15..24) are the same at every node; unscreened ones spread their n over the nodes
    assert torch.allclose(after_mean[:, :10], mean[:10].expand(5, 10, 2))
    assert (after_sd[:, 10:, 0] < sd[10:, 0]).all() and (after_mean[0, 10:, 0] < after_mean[-1, 10:, 0]).all()
    # Cp is MD-only: the screen leaves it alone
    assert torch.allclose(after_mean[..., 1], mean[:, 1].expand(5, 25)) and torch.allclose(after_sd[..., 1], sd[:, 1].expand(5, 25))


def test_stage_costs_must_be_positive():
    with pytest.raises(ValueError):
        StageCosts(qm=0.0, md=1.0)


# --- a qm-first campaign end to end, on an oracle whose n is Lorentz-Lorenz of its alpha, M and density -------------
def _qm_first_campaign(tmp_path, cycles: int = 4):
    from tests.conftest import write
    from tests.test_campaign import SMILES
    from workflow.campaign.config import load_campaign

    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    rows = []
    for i in range(len(SMILES)):
        alpha, weight, rho = 5.0 + 0.7 * (i % 9), 40.0 + 6.0 * (i % 5), 0.9 + 0.03 * ((i * 7) % 10)
        rows.append(f"Q{i:02d},{alpha},{weight},{rho},{lorentz_lorenz(alpha, rho, weight)},{1000 + 37 * ((i * 5) % 11)}")
    write(tmp_path / "oracle.csv", "id,qm_polarizability_monomer,mol_weight_monomer,density,refractive_index,Cp\n"
          + "\n".join(rows))
    return load_campaign(write(tmp_path / "c.yaml", "name: qmfirst\npool: pool.csv\nmode: qm-first\n"
                               "objectives: {refractive_index: maximize, Cp: maximize}\n"
                               f"initial_size: 6\nbatch_size: 3\ncycles: {cycles}\nseed: 4\n"
                               "oracle: {table: oracle.csv, qm_columns: {}, stage_core_seconds: {qm: 100, md: 900}}\n"))


def test_qm_first_campaign_screens_then_runs_md_where_it_pays(tmp_path):
    import json

    from workflow.campaign.engine import CampaignRunner, store_path
    from workflow.campaign.store import JobKind, JobState, Store
    from workflow.dispatch.evaluators import OracleEvaluator

    campaign = _qm_first_campaign(tmp_path)
    CampaignRunner(campaign, tmp_path / "runs").run(OracleEvaluator(campaign.oracle))
    store = Store(store_path(tmp_path / "runs", "qmfirst"), readonly=True)
    jobs = store.jobs()
    by_cycle: dict[int, list] = {}
    for j in jobs:
        by_cycle.setdefault(j["cycle"], []).append(j)
    assert sorted(by_cycle) == [0, 1, 2, 3, 4]
    assert [j["kind"] for j in by_cycle[0]] == [JobKind.JOB] * 6  # the initial design: whole jobs
    cost = {JobKind.QM: 100, JobKind.MD: 900, JobKind.JOB: 1000}
    for cycle in range(1, 5):  # each cycle spends at most what 3 property jobs cost
        assert sum(cost[j["kind"]] for j in by_cycle[cycle]) <= 3 * 1000
    kinds = [j["kind"] for j in jobs]
    assert JobKind.QM in kinds and JobKind.MD in kinds  # it screened, and it ran MD on screened polymers
    assert all(j["state"] == JobState.DONE for j in jobs)
    screens = {r["polymer_id"]: r for r in store.screens()}
    qm_jobs = {j["polymer_id"]: j for j in jobs if j["kind"] == JobKind.QM}
    assert set(screens) == set(qm_jobs)  # every screen's result stored, under its polymer
    oracle = {ln.split(",")[0]: ln.split(",") for ln in (tmp_path / "oracle.csv").read_text().splitlines()[1:]}
    for pid, r in screens.items():
        assert r["polarizability_d"] == float(oracle[pid][1]) and r["mol_weight"] == float(oracle[pid][2])
        assert set(json.loads(r["qm"])) >= {"qm_polarizability_monomer", "mol_weight_monomer"}
        assert "refractive_index" not in json.loads(r["qm"])  # a screen reads the QM columns only
    for j in (j for j in jobs if j["kind"] == JobKind.MD):  # MD only after the polymer's screen, in its directory
        screen_job = qm_jobs[j["polymer_id"]]
        assert screen_job["cycle"] < j["cycle"] and screen_job["job_dir"] == j["job_dir"]
        assert screens[j["polymer_id"]]["recorded_at"] < j["submitted_at"]
    # no polymer screened twice or simulated twice
    assert len(qm_jobs) == sum(k == JobKind.QM for k in kinds)
    md_like = [j["polymer_id"] for j in jobs if j["kind"] in (JobKind.MD, JobKind.JOB)]
    assert len(md_like) == len(set(md_like))
    labels = {r["cycle"]: r["strategy"] for r in store.cycles()}
    assert labels[0].startswith("random") and labels[1].startswith("qm-first (")
    store.close()


def test_qm_first_settings_are_checked(tmp_path):
    from pydantic import ValidationError

    campaign = _qm_first_campaign(tmp_path)
    data = campaign.model_dump(mode="json")
    with pytest.raises(ValidationError, match="no objective a QM screen informs"):
        type(campaign).model_validate(data | {"objectives": {"Cp": "maximize", "density": "minimize"}})
    oracle = data["oracle"] | {"stage_core_seconds": None}
    with pytest.raises(ValidationError, match="stage_core_seconds"):
        type(campaign).model_validate(data | {"oracle": oracle})


@pytest.fixture(scope="module")
def two_cycle_run(tmp_path_factory) -> Path:
    """A finished two-cycle qm-first oracle campaign (``qmfirst``): its runs directory, read by the tests below."""
    from workflow.campaign.engine import CampaignRunner
    from workflow.dispatch.evaluators import OracleEvaluator

    tmp = tmp_path_factory.mktemp("qmfirst")
    campaign = _qm_first_campaign(tmp, cycles=2)
    CampaignRunner(campaign, tmp / "runs").run(OracleEvaluator(campaign.oracle))
    return tmp / "runs"


def test_status_shows_each_fidelity(two_cycle_run, capsys):
    from workflow.cli import main

    capsys.readouterr()
    assert main(["status", "qmfirst", "--runs", str(two_cycle_run)]) == 0
    out = capsys.readouterr().out
    assert "cycle 2 of 2 (cycle 0 = initial design; qm-first)" in out
    assert "fidelities: " in out and "QM screen(s)" in out and "whole job(s)" in out
    assert "QM only (" in out and "n_D at the mean measured density" in out


@pytest.mark.slow  # a real driver killed three times; CI runs it in its second step
def test_qm_first_killed_then_resumed_keeps_both_fidelities_exact(tmp_path):
    """kill -9 while screens and MD jobs run, and between cycles; the resumed campaign makes the same choices, cycle
    by cycle and kind by kind, as an uninterrupted one, and stores each screen once."""
    import signal

    from tests.test_durable import driver
    from workflow.campaign.engine import CampaignRunner, store_path
    from workflow.campaign.store import Store
    from workflow.dispatch.evaluators import OracleEvaluator

    def choices(runs: Path) -> list[tuple]:
        store = Store(store_path(runs, "qmfirst"), readonly=True)
        try:
            return [(j["cycle"], j["polymer_id"], j["kind"]) for j in store.jobs()]
        finally:
            store.close()

    ref = tmp_path / "ref"
    ref.mkdir()
    campaign = _qm_first_campaign(ref, cycles=3)
    CampaignRunner(campaign, ref / "runs").run(OracleEvaluator(campaign.oracle))
    expected = choices(ref / "runs")

    work = tmp_path / "work"
    work.mkdir()
    _qm_first_campaign(work, cycles=3)
    path = work / "c.yaml"
    path.write_text(path.read_text().replace("stage_core_seconds:", "duration_s: [0.2, 0.8], stage_core_seconds:"))
    runs = work / "runs"
    kill_points = [
        ("while the initial design runs", lambda j, c: len(j) >= 6),
        ("while cycle 1's screens and MD jobs run", lambda j, c: any(x["cycle"] == 1 and x["state"] == "submitted"
                                                                     for x in j)),
        ("after some of cycle 2's results", lambda j, c: any(x["cycle"] == 2 and x["state"] == "done" for x in j)),
    ]
    for label, condition in kill_points:
        proc = driver(path, runs)
        _wait(runs, condition, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = driver(path, runs)
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, out
    assert choices(runs) == expected
    store = Store(store_path(runs, "qmfirst"), readonly=True)
    screens = [r["polymer_id"] for r in store.screens()]
    assert len(screens) == len(set(screens)) == sum(k == "qm" for _, _, k in expected)
    assert all(j["state"] == "done" for j in store.jobs())
    store.close()


def _wait(runs: Path, condition, proc, limit: float = 120) -> None:
    import time

    from workflow.campaign.engine import store_path
    from workflow.campaign.store import Store

    t0 = time.time()
    while time.time() - t0 < limit:
        path = store_path(runs, "qmfirst")
        if path.is_file():
            try:
                store = Store(path, readonly=True)
                try:
                    jobs = [dict(j) for j in store.jobs()]
                finally:
                    store.close()
                if condition(jobs, None):
                    return
            except Exception:  # tables not made yet
                pass
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before the kill point:\n{proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("kill point never reached")


@pytest.mark.physics
@pytest.mark.slow  # real smoke jobs through Parsl, about three minutes; CI runs it in its second step
# smoke, not the test preset: which polymer earns its MD is planned from the measured QM and MD times, and at the test
# preset's few seconds a job the timing noise of a busy machine decided it (no MD picked in one CI run)
def test_qm_first_smoke_campaign_through_parsl_reads_each_screen_back_for_its_md(tmp_path):
    import json

    from tests.conftest import write
    from workflow.campaign.config import load_campaign
    from workflow.campaign.engine import CampaignRunner, store_path
    from workflow.campaign.store import JobKind, Store
    from workflow.dispatch.evaluators import make_evaluator
    from workflow.dispatch.profiles import load_profile

    write(tmp_path / "pool.csv", "id,smiles\nPE,*CC*\nPOM,*CO*\nPVF,*CC(*)F\nPP,*CC(*)C\nPVC,*CC(*)Cl\n"
                                 "PVDF,*CC(*)(F)F\n")
    camp = load_campaign(write(tmp_path / "c.yaml", "name: qmf\npool: pool.csv\nmode: qm-first\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"
                               "initial_size: 2\nbatch_size: 1\ncycles: 2\npreset: smoke\nseed: 5\n"))
    runner = CampaignRunner(camp, tmp_path / "runs")
    runner.run(make_evaluator(camp, load_profile("local"), runner.run_dir))
    store = Store(store_path(tmp_path / "runs", "qmf"), readonly=True)
    jobs = store.jobs()
    assert all(j["state"] == "done" for j in jobs), [dict(j) for j in jobs]
    kinds = {c: [j["kind"] for j in jobs if j["cycle"] == c] for c in (0, 1, 2)}
    assert kinds[0] == [JobKind.JOB, JobKind.JOB] and JobKind.QM in kinds[1]
    screens = {r["polymer_id"]: r for r in store.screens()}
    assert set(screens) == {j["polymer_id"] for j in jobs if j["kind"] == JobKind.QM}
    for r in screens.values():  # the QM stage's values, as the record names them
        qm = json.loads(r["qm"])
        assert r["polarizability_d"] == qm["polarizability_589.3nm"] > 0 and r["mol_weight"] == qm["mol_weight_unit"]
        assert set(qm["timings"]) >= {"qm", "prep"} and "md" not in qm["timings"]
    md_jobs = [j for j in jobs if j["kind"] == JobKind.MD]
    assert md_jobs, "no MD job after a screen"
    results = {r["job_id"]: json.loads(r["properties"]) for r in store.results()}
    for j in md_jobs:
        screen = screens[j["polymer_id"]]
        assert j["job_dir"] == next(x["job_dir"] for x in jobs if x["job_id"] == screen["job_id"])
        assert screen["recorded_at"] < j["ended_at"]  # the QM was in the store before its MD finished
        timings = results[j["job_id"]]["timings"]
        assert "md" in timings and "qm" not in timings  # the screen's QM read back, not computed again
        assert results[j["job_id"]]["polarizability_589.3nm"] == screen["polarizability_d"]
    store.close()


def test_export_carries_each_values_fidelity(two_cycle_run):
    from workflow.campaign.engine import store_path
    from workflow.campaign.store import Store
    from workflow.results.report import export_frame

    store = Store(store_path(two_cycle_run, "qmfirst"), readonly=True)
    frame = export_frame(store)
    store.close()
    qm = frame[frame["fidelity"] == "qm"]
    full = frame[frame["fidelity"] == "qm+md"]
    assert len(qm) and len(full) and set(frame["job_kind"]) >= {"qm", "job"}
    assert qm["qm_polarizability_monomer"].notna().all() and qm["refractive_index"].isna().all()
    assert full["refractive_index"].notna().all()


def test_pareto_and_report_show_the_qm_only_polymers(two_cycle_run, capsys):
    from workflow.campaign.engine import store_path
    from workflow.campaign.store import Store
    from workflow.cli import main
    from workflow.results.html_report import build_report

    capsys.readouterr()
    assert main(["pareto", "qmfirst", "--runs", str(two_cycle_run)]) == 0
    out = capsys.readouterr().out
    assert "QM only (" in out and "fidelities: " in out
    store = Store(store_path(two_cycle_run, "qmfirst"), readonly=True)
    page = build_report(store, "qmfirst")
    store.close()
    assert "id='qm-only'" in page and "QM screen(s)" in page
