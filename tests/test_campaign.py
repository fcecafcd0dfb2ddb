"""Campaigns end to end: a real two-cycle campaign through Parsl (RadonPy, LAMMPS and PySCF at the test preset
`tests/presets/plumbing.yaml`), and oracle replays."""


import pytest

from surrogate.strategies import make_strategy
from tests.conftest import PLUMBING, write
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.dispatch.evaluators import OracleEvaluator, make_evaluator
from workflow.dispatch.profiles import load_profile

TINY_POOL = "id,smiles,name\nPE,*CC*,polyethylene\nPOM,*CO*,polyoxymethylene\nPVF,*CC(*)F,poly(vinyl fluoride)\n" \
            "PP,*CC(*)C,polypropylene\n"


def assert_store_consistent(store: Store):
    jobs = store.jobs()
    assert jobs, "no jobs"
    assert all(j["state"] in ("done", "failed", "returned") for j in jobs), [dict(j) for j in jobs]
    job_ids = {j["job_id"]: j for j in jobs}
    for r in store.results():
        assert r["job_id"] in job_ids and job_ids[r["job_id"]]["state"] == "done"
        assert job_ids[r["job_id"]]["polymer_id"] == r["polymer_id"]
    assert len(store.results()) == sum(j["state"] == "done" for j in jobs)
    polymers = [j["polymer_id"] for j in jobs if j["state"] != "returned"]  # a returned job is history
    assert len(polymers) == len(set(polymers)), "a polymer was submitted twice"
    for j in jobs:
        if j["state"] in ("failed", "returned"):
            assert j["failure_kind"] and j["failure_stage"] and j["failure_message"]


@pytest.mark.physics
def test_two_cycle_campaign_of_real_jobs_through_parsl(tmp_path):
    write(tmp_path / "pool.csv", TINY_POOL)
    camp = load_campaign(write(tmp_path / "c.yaml", "name: tiny\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"
                               f"initial_size: 2\nbatch_size: 2\ncycles: 2\npreset: {PLUMBING}\nseed: 5\n"))
    runner = CampaignRunner(camp, tmp_path / "runs")
    runner.run(make_evaluator(camp, load_profile("local"), runner.run_dir))
    store = Store(store_path(tmp_path / "runs", "tiny"), readonly=True)
    assert_store_consistent(store)
    assert len(store.jobs()) == 4  # 2 + 2, then cycle 2 finds nothing left
    assert sorted({c["cycle"] for c in store.cycles()}) == [0, 1]
    cyc1 = [c for c in store.cycles() if c["cycle"] == 1]
    assert all(c["strategy"].startswith("qlognehvi-greedy") and c["acquisition"] is not None and c["predicted_mean"] for c in cyc1)
    for r in store.results():
        assert 0.5 < r["density"] < 2.0 and r["refractive_index"] > 1 and r["abbe_number"] > 0
        assert r["preset"] == "plumbing" and "lammps" in r["versions"]
    assert_qm_dataset_matches_the_records(tmp_path, store)


def assert_qm_dataset_matches_the_records(tmp_path, store: Store):
    """Issue 39, item 5: the QM dataset (extxyz and an ASE database) read back with ASE holds each finished job's
    molecule with its record's values: energy, polarizabilities (the capped unit's tensors), method, ids."""
    import json

    import ase.db
    import ase.io
    import numpy as np

    from workflow.cli import main
    from workflow.common.versions import package_versions
    from workflow.results.qm_dataset import HARTREE_EV

    records = {r["polymer_id"]: json.loads(r["properties"]) for r in store.results()}
    smiles = {r["polymer_id"]: r["smiles"] for r in store.results()}
    version = package_versions(["polyscout"])["polyscout"]
    for suffix in ("extxyz", "db"):
        path = tmp_path / "data" / f"qm.{suffix}"
        assert main(["export", "tiny", "--runs", str(tmp_path / "runs"), "--qm-dataset", str(path)]) == 0
        frames = ase.io.read(path, ":")
        infos = ([a.info for a in frames] if suffix == "extxyz" else
                 [{**row.key_value_pairs, **row.data} for row in ase.db.connect(path).select()])
        assert len(frames) == len(infos) == len(records) == 4
        for atoms, info in zip(frames, infos):
            rec = records[info["polymer_id"]]
            assert info["psmiles"] == smiles[info["polymer_id"]] and info["polyscout_version"] == version
            assert info["functional"] == rec["functional"] and json.loads(info["basis"])["C"] == rec["basis"]
            assert abs(atoms.get_potential_energy() / HARTREE_EV - rec["scf_energy_hartree"]) < 1e-8
            assert len(atoms) > 6 and atoms.get_dipole_moment().shape == (3,)
            static = np.asarray(info["polarizability_static"]).reshape(3, 3)
            assert np.trace(static) / 3 == pytest.approx(rec["polarizability_capped_static"], rel=1e-9)
            for wl in ("486.1", "589.3", "656.3"):
                tensor = np.asarray(info[f"polarizability_{wl.replace('.', '_')}nm"]).reshape(3, 3)
                unit = np.trace(tensor) / 3 - rec[f"polarizability_cap_{wl}nm"]  # the repeat unit's, as recorded
                assert unit == pytest.approx(rec[f"polarizability_{wl}nm"], rel=1e-9)


# like PI1070: text and integer columns beside the objectives (records must still be JSON)
ORACLE = "id,refractive_index,Cp,tacticity,DP\n" + "\n".join(
    f"Q{i:02d},{1.4 + 0.01 * (i % 7)},{1000 + 37 * ((i * 5) % 11)},atactic,{100 + i}" for i in range(30))
SMILES = ["*CC*", "*CC(*)C", "*CC(*)CC", "*CC(*)(C)C", "*CC(*)F", "*CC(*)Cl", "*CC(*)C#N", "*CCO*", "*CO*",
          "*CCS*", "*CC(C)O*", "*CCCCO*", "*CC(*)O", "*CC(*)(F)F", "*C(F)(F)C(*)(F)F", "*CC(*)C(N)=O",
          "*CC(=O)O*", "*C(C)C(=O)O*", "*CC(*)OC(C)=O", "*CC(*)C(=O)OC", "*CC(*)c1ccccc1", "*CC(*)(C(=O)OC)C",
          "*CC=CC*", "*CC(C)=CC*", "*CC(*)C=C", "*CC(*)SC", "*CC(C)S*", "*c1ccc(S*)cc1", "*c1ccc(O*)cc1",
          "*CCCCCC(=O)N*"]


@pytest.fixture
def oracle_campaign(tmp_path):
    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    # Q03 has no refractive index: its job fails and it is never selected again
    write(tmp_path / "oracle.csv", "\n".join(",".join(["Q03", "", *ln.split(",")[2:]]) if ln.startswith("Q03,") else ln
                                             for ln in ORACLE.split("\n")))
    return load_campaign(write(tmp_path / "c.yaml", "name: replay\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, Cp: maximize}\n"
                               "initial_size: 6\nbatch_size: 4\ncycles: 7\nseed: 2\n"
                               "oracle: {table: oracle.csv}\n"))


@pytest.mark.parametrize("strategy", ["ehvi-topk", "qlognehvi-greedy", "ehvi-believer", "random"])
def test_oracle_campaign_records_failures_and_never_reselects(tmp_path, oracle_campaign, strategy):
    campaign = oracle_campaign.model_copy(update={"strategy": make_strategy(strategy)})
    runner = CampaignRunner(campaign, tmp_path / "runs")
    runner.run(OracleEvaluator(campaign.oracle))
    store = Store(store_path(tmp_path / "runs", "replay"), readonly=True)
    assert_store_consistent(store)
    jobs = store.jobs()
    assert len(jobs) == 30  # 6 + 6 x 4 exhausts the pool; cycle 7 finds nothing left
    seen: set[str] = set()
    for cycle in range(7):
        picks = [c["polymer_id"] for c in store.cycles() if c["cycle"] == cycle]
        assert not (set(picks) & seen) and len(set(picks)) == len(picks)
        seen |= set(picks)
    q03 = [j for j in jobs if j["polymer_id"] == "Q03"]
    assert len(q03) == 1 and q03[0]["state"] == "failed" and "refractive_index" in q03[0]["failure_message"]
    assert sum(j["state"] == "failed" for j in jobs) == 1
    # the greedy strategy may add "(hypervolume saturated: last k by non-domination probability)"
    later = {c["strategy"].split(" (hypervolume saturated")[0] for c in store.cycles() if c["cycle"] > 0}
    assert later == {strategy}


def test_status_and_pareto_commands(tmp_path, oracle_campaign, capsys):
    from types import SimpleNamespace

    from workflow.cli import main

    CampaignRunner(oracle_campaign, tmp_path / "runs").run(OracleEvaluator(oracle_campaign.oracle))

    def run(*a):
        capsys.readouterr()
        rc = main([*a, "--runs", str(tmp_path / "runs")])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)
    st = run("status", "replay")
    assert st.returncode == 0 and "jobs: done" in st.stdout and "cycle 6 of 7" in st.stdout and "Q03" in st.stdout
    par = run("pareto", "replay")
    assert par.returncode == 0 and "non-dominated" in par.stdout
    import json

    store = Store(store_path(tmp_path / "runs", "replay"), readonly=True)
    obj = lambda r: json.loads(r["objectives"])
    best = max(store.results(), key=lambda r: (obj(r)["Cp"], obj(r)["refractive_index"]))
    assert best["polymer_id"] in par.stdout  # the lexicographic best is always non-dominated
    missing = run("status", "nothing-here")
    assert missing.returncode == 2 and "no campaign store" in missing.stderr


def test_changed_campaign_settings_are_refused(tmp_path, oracle_campaign):
    CampaignRunner(oracle_campaign, tmp_path / "runs").run(OracleEvaluator(oracle_campaign.oracle))
    changed = oracle_campaign.model_copy(update={"batch_size": 7})
    with pytest.raises(Exception, match="different settings"):
        CampaignRunner(changed, tmp_path / "runs")


def test_a_setting_the_file_leaves_out_keeps_the_value_the_campaign_started_with(tmp_path, oracle_campaign, caplog):
    # a campaign started with another strategy than today's default resumes with it when its file names none
    # (the default changed in session 9); a file that names another strategy is still refused
    started = oracle_campaign.model_copy(update={"strategy": make_strategy("ehvi-topk")})
    CampaignRunner(started, tmp_path / "runs").run(OracleEvaluator(started.oracle))
    assert "strategy" not in oracle_campaign.model_fields_set
    assert oracle_campaign.strategy.name != "ehvi-topk"
    caplog.set_level("INFO", logger="workflow")
    resumed = CampaignRunner(oracle_campaign, tmp_path / "runs")
    assert resumed.campaign.strategy.name == "ehvi-topk" and resumed.strategy.name == "ehvi-topk"
    assert any("strategy not in the campaign file: kept as the campaign started" in ln and "ehvi-topk" in ln
               for ln in caplog.messages)
    named = oracle_campaign.model_copy(update={"strategy": make_strategy("ehvi-believer")})
    named.model_fields_set.add("strategy")
    with pytest.raises(Exception, match=r"different settings \(strategy\)"):
        CampaignRunner(named, tmp_path / "runs")
