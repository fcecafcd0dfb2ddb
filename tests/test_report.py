"""Pareto inspection: the trade-off boundary, plots, hypervolume per cycle, export and reuse of exports."""

import struct

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write
from tests.test_campaign import SMILES
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.dispatch.evaluators import OracleEvaluator
from workflow.results.report import (
    COMMERCIAL_OPTICAL_POLYMERS,
    BoundaryPoint,
    ReportError,
    beyond_boundary,
    boundary_n,
    read_boundary,
)


def test_boundary_goes_through_the_commercial_polymers_and_extends_its_end_segments():
    pts = COMMERCIAL_OPTICAL_POLYMERS
    n = boundary_n(np.array([90.0, 58.0, 31.0, 44.5, 100.0, 20.0]), pts)
    assert n[0] == pytest.approx(1.34) and n[1] == pytest.approx(1.492)
    assert n[2] == pytest.approx(1.592)  # polystyrene and polycarbonate share Abbe 31: the higher n_D counts
    assert n[3] == pytest.approx((1.492 + 1.592) / 2)
    slope_hi = (1.34 - 1.492) / (90 - 58)
    assert n[4] == pytest.approx(1.34 + 10 * slope_hi)
    slope_lo = (1.592 - 1.492) / (31 - 58)
    assert n[5] == pytest.approx(1.592 + (20 - 31) * slope_lo)
    # PMMA itself is not beyond; a polymer with PMMA's Abbe number and a higher n_D is
    assert beyond_boundary(np.array([1.492, 1.52, 1.45]), np.array([58.0, 58.0, 70.0]), pts).tolist() == \
        [False, True, True]


def test_user_boundary_file_is_checked(tmp_path):
    pts = read_boundary(write(tmp_path / "b.csv", "name,refractive_index,abbe_number\nA,1.40,70\nB,1.60,30\n"))
    assert pts == (BoundaryPoint("A", 1.40, 70.0), BoundaryPoint("B", 1.60, 30.0))
    assert boundary_n(np.array([50.0]), pts)[0] == pytest.approx(1.50)
    with pytest.raises(ReportError, match="lacks column"):
        read_boundary(write(tmp_path / "c.csv", "n,abbe\n1.4,70\n"))
    with pytest.raises(ReportError, match="row 2"):
        read_boundary(write(tmp_path / "d.csv", "refractive_index,abbe_number\n1.4,70\n0.9,30\n"))


def _optical_oracle(tmp_path):
    """n_D and Abbe numbers on the usual trade-off, three polymers well beyond it."""
    rng = np.random.default_rng(0)
    n = np.linspace(1.36, 1.66, len(SMILES))
    abbe = 80 - (n - 1.34) * 220 + rng.normal(0, 2, len(SMILES))
    for i, (ni, vi) in enumerate([(1.70, 40.0), (1.62, 45.0), (1.55, 62.0)]):
        n[5 + 9 * i], abbe[5 + 9 * i] = ni, vi
    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    pd.DataFrame({"id": [f"Q{i:02d}" for i in range(len(SMILES))], "refractive_index": n,
                  "abbe_number": abbe}).to_csv(tmp_path / "oracle.csv", index=False)
    return n, abbe


def _run(tmp_path, name, extra="", pool="pool.csv"):
    camp = load_campaign(write(tmp_path / f"{name}.yaml", f"name: {name}\npool: {pool}\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"
                               "initial_size: 6\nbatch_size: 4\ncycles: 3\nseed: 1\nstrategy: random\n"
                               "oracle: {table: oracle.csv}\n" + extra))
    runner = CampaignRunner(camp, tmp_path / "runs")
    runner.run(OracleEvaluator(camp.oracle))
    return Store(store_path(tmp_path / "runs", name), readonly=True)


@pytest.fixture
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _workflow(tmp_path, *args):
    """The `workflow` command, in this process (its output captured)."""
    import contextlib
    import io

    from workflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*args, "--runs", str(tmp_path / "runs")])
    assert rc == 0, err.getvalue()
    return out.getvalue()


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def test_pareto_table_plots_boundary_and_hypervolume(tmp_path, _in_tmp):
    n, abbe = _optical_oracle(tmp_path)
    store = _run(tmp_path, "optics")
    evaluated = {r["polymer_id"] for r in store.results()}
    assert len(evaluated) == 18

    out = _workflow(tmp_path, "pareto", "optics", "--plot", str(tmp_path / "front.png"))
    # the listed front is exactly the non-dominated set of the evaluated polymers, computed here by brute force
    idx = {f"Q{i:02d}": i for i in range(len(SMILES))}
    front = {p for p in evaluated if not any(n[idx[q]] >= n[idx[p]] and abbe[idx[q]] >= abbe[idx[p]] and q != p
                                             for q in evaluated)}
    listed = {ln.split()[0] for ln in out.splitlines()[2:] if ln.startswith("Q") and not ln.startswith("  ")}
    assert listed == front
    beyond = {f"Q{5 + 9 * i:02d}" for i in range(3)} & evaluated
    section = out.split("beyond the trade-off boundary")[1]
    assert {ln.split(":")[0].strip() for ln in section.splitlines()[1:] if ln.startswith("  Q")} == beyond
    assert "PMMA 1.492/58" in section
    assert _png_size(tmp_path / "front.png") == (700, 500)

    svg = tmp_path / "front.svg"
    _workflow(tmp_path, "pareto", "optics", "--plot", str(svg))
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "CYTOP" in text

    out = _workflow(tmp_path, "pareto", "optics", "--hypervolume", "--plot", str(tmp_path / "hv.png"))
    rows = [ln.split() for ln in out.splitlines() if ln[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3] and [int(r[1]) for r in rows] == [6, 10, 14, 18]
    hv = [float(r[3]) for r in rows]
    assert all(b >= a for a, b in zip(hv, hv[1:])) and hv[0] > 0
    assert _png_size(tmp_path / "hv.png") == (700, 400)


def test_export_then_reuse_as_initial_data(tmp_path, _in_tmp):
    _optical_oracle(tmp_path)
    first = _run(tmp_path, "first")
    for fmt in ("parquet", "csv"):
        _workflow(tmp_path, "export", "first", "--format", fmt, "--out", str(tmp_path / f"first.{fmt}"))
    exp = pd.read_parquet(tmp_path / "first.parquet")
    assert len(exp) == len(first.jobs()) == 18
    assert set(exp["status"]) == {"done"}
    for col in ("polymer_id", "smiles", "canonical", "cycle", "strategy", "evaluator", "refractive_index",
                "abbe_number", "job_dir", "recorded_at"):
        assert exp[col].notna().all(), col
    assert exp["evaluator"].iloc[0] == "oracle:oracle.csv"
    assert pd.read_csv(tmp_path / "first.csv")["polymer_id"].tolist() == exp["polymer_id"].tolist()

    # a second campaign names the export: those 18 polymers train the model and are never submitted again;
    # they count toward the initial design, so cycle 0 picks by the strategy (4), not 6 at random
    second = _run(tmp_path, "second", "initial_data: [first.parquet]\n")
    known = set(exp["polymer_id"])
    submitted = [j["polymer_id"] for j in second.jobs()]
    assert submitted and not known & set(submitted)
    assert len(submitted) == len(SMILES) - len(known)  # the rest of the pool, 12 of 30
    cyc0 = [c for c in second.cycles() if c["cycle"] == 0]
    assert len(cyc0) == 4 and all(c["n_training"] == 18 for c in cyc0)

    # a pool holding only some of them: the others still train the model (featurized from their PSMILES)
    half = [ln for ln in (tmp_path / "pool.csv").read_text().splitlines()][:16]  # header + Q00..Q14
    write(tmp_path / "half.csv", "\n".join(half) + "\n")
    third = _run(tmp_path, "third", "initial_data: [first.csv]\n", pool="half.csv")
    in_half = {ln.split(",")[0] for ln in half[1:]}
    submitted = {j["polymer_id"] for j in third.jobs()}
    assert submitted == in_half - known  # everything else in the small pool, nothing known again
    assert all(c["n_training"] == 18 for c in third.cycles() if c["cycle"] == 0)


def test_initial_data_without_the_objectives_is_a_clear_error(tmp_path):
    _optical_oracle(tmp_path)
    write(tmp_path / "old.csv", "smiles,density\n*CC*,0.9\n")
    from workflow.common.errors import ConfigError

    with pytest.raises(ConfigError, match="old.csv lacks column.*refractive_index"):
        _run(tmp_path, "bad", "initial_data: [old.csv]\n")


def test_initial_data_rewritten_between_runs_is_refused(tmp_path, _in_tmp):
    """Issue 40, case 5: an export rewritten in place (``workflow export`` overwrites) shrank the training set of a
    campaign naming it, silently; its content is now checked like the pool's."""
    from workflow.common.errors import ConfigError

    _optical_oracle(tmp_path)
    _run(tmp_path, "first")
    _workflow(tmp_path, "export", "first", "--format", "csv", "--out", str(tmp_path / "first.csv"))
    _run(tmp_path, "second", "initial_data: [first.csv]\n")
    _run(tmp_path, "second", "initial_data: [first.csv]\n")  # unchanged: resumes
    lines = (tmp_path / "first.csv").read_text().splitlines()
    write(tmp_path / "first.csv", "\n".join(lines[:5]) + "\n")
    with pytest.raises(ConfigError, match=r"initial_data content \(first.csv changed"):
        _run(tmp_path, "second", "initial_data: [first.csv]\n")


def test_pareto_shows_standard_errors_where_the_records_have_them(tmp_path, capsys):
    """Issue 38, item 3: each value with its standard error (block averages), in pareto's table and the plot."""
    from tests.conftest import write
    from tests.test_campaign import SMILES
    from workflow.campaign.config import load_campaign
    from workflow.campaign.engine import CampaignRunner
    from workflow.cli import main
    from workflow.dispatch.evaluators import OracleEvaluator

    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES[:12])))
    write(tmp_path / "oracle.csv", "id,refractive_index,refractive_index_sem,abbe_number,abbe_number_sem\n" + "\n".join(
        f"Q{i:02d},{1.4 + 0.013 * i},0.0021,{60 - 1.7 * i + (i % 3)},0.35" for i in range(12)))
    camp = load_campaign(write(tmp_path / "c.yaml", "name: sem\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, abbe_number: maximize}\n"
                               "initial_size: 6\nbatch_size: 3\ncycles: 1\noracle: {table: oracle.csv}\n"))
    CampaignRunner(camp, tmp_path / "runs").run(OracleEvaluator(camp.oracle))
    capsys.readouterr()
    plot = tmp_path / "front.png"
    assert main(["pareto", "sem", "--runs", str(tmp_path / "runs"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "± 0.0021" in out and "± 0.3500" in out and "block averages" in out
    assert plot.stat().st_size > 10_000
