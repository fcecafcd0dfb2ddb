"""Calibration against experiment: linear maps fitted, checked leave-one-out, and used by a campaign."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import SHARED, write
from tests.test_campaign import ORACLE, SMILES
from workflow.campaign.calibration import Calibration
from workflow.campaign.config import load_campaign
from workflow.campaign.engine import CampaignRunner, store_path
from workflow.campaign.store import Store
from workflow.cli import main
from workflow.common.errors import ConfigError
from workflow.dispatch.evaluators import OracleEvaluator
from workflow.results.calibrate import (
    fit_calibration,
    fit_linear,
    published_results,
    read_reference,
)


def reference_and_results(tmp_path, n=6, noise=0.0):
    rng = np.random.default_rng(0)
    smiles = SMILES[:n]
    computed_n = 1.40 + 0.02 * np.arange(n)
    computed_v = 20.0 + 5.0 * np.arange(n)
    ref = pd.DataFrame({"id": [f"R{i}" for i in range(n)], "smiles": smiles,
                        "exp_refractive_index": 0.9 * computed_n + 0.2 + noise * rng.standard_normal(n),
                        "exp_abbe_number": 2.0 * computed_v + 5.0 + noise * rng.standard_normal(n)})
    res = pd.DataFrame({"smiles": smiles, "preset": "quick", "refractive_index": computed_n,
                        "abbe_number": computed_v, "status": "done"})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    res.to_csv(tmp_path / "res.csv", index=False)
    return ref, res


def test_a_synthetic_linear_table_gives_back_its_slope_and_intercept(tmp_path):
    reference_and_results(tmp_path)
    cal = fit_calibration(read_reference(tmp_path / "ref.csv"), pd.read_csv(tmp_path / "res.csv"), "ref.csv")
    n, v = cal.maps["quick"]["refractive_index"], cal.maps["quick"]["abbe_number"]
    assert n.slope == pytest.approx(0.9) and n.intercept == pytest.approx(0.2) and n.mae_loo < 1e-9
    assert v.slope == pytest.approx(2.0) and v.intercept == pytest.approx(5.0) and n.n == 6
    assert cal.apply("quick", {"refractive_index": 1.5, "Cp": 3.0}) == {"refractive_index": pytest.approx(1.55),
                                                                       "Cp": 3.0}
    assert cal.apply("full", {"refractive_index": 1.5}) == {"refractive_index": 1.5}  # no map for that preset


def test_leave_one_out_is_computed_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    y = np.array([2.1, 3.9, 6.2, 7.8, 12.5])
    m = fit_linear(x, y)
    by_hand = np.mean([abs(np.polyval(np.polyfit(np.delete(x, i), np.delete(y, i), 1), x[i]) - y[i])
                       for i in range(5)])
    assert m.mae_loo == pytest.approx(by_hand) and m.mae_loo > m.mae_fit


def test_fewer_than_four_matches_is_a_one_line_error(tmp_path, capsys):
    reference_and_results(tmp_path, n=3)
    with pytest.raises(ConfigError, match="only 3 polymer"):
        fit_calibration(read_reference(tmp_path / "ref.csv"), pd.read_csv(tmp_path / "res.csv"), "ref.csv")
    rc = main(["calibrate", str(tmp_path / "res.csv"), "--reference", str(tmp_path / "ref.csv"),
               "--out", str(tmp_path / "cal.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "need 4" in err and not (tmp_path / "cal.yaml").exists()


def test_the_reference_reader_names_a_missing_column(tmp_path):
    write(tmp_path / "ref.csv", "id,smiles,exp_refractive_index\nA,*CC*,1.5\n")
    with pytest.raises(ConfigError, match="lacks column\\(s\\) exp_abbe_number"):
        read_reference(tmp_path / "ref.csv")


def test_a_calibrated_campaign_ranks_on_calibrated_values_and_exports_both(tmp_path, capsys):
    write(tmp_path / "pool.csv", "id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    write(tmp_path / "oracle.csv", ORACLE)
    cal = Calibration(reference="by hand", maps={"oracle": {"refractive_index": {
        "slope": 2.0, "intercept": -1.0, "n": 4, "mae_raw": 0.0, "mae_fit": 0.0, "mae_loo": 0.0}}})
    write(tmp_path / "cal.yaml", yaml.safe_dump(cal.model_dump(mode="json")))
    camp = load_campaign(write(tmp_path / "c.yaml", "name: cal\npool: pool.csv\n"
                               "objectives: {refractive_index: maximize, Cp: maximize}\ninitial_size: 5\n"
                               "batch_size: 3\ncycles: 1\nseed: 1\noracle: {table: oracle.csv}\n"
                               "calibration: cal.yaml\n"))
    CampaignRunner(camp, tmp_path / "runs").run(OracleEvaluator(camp.oracle))
    store = Store(store_path(tmp_path / "runs", "cal"), readonly=True)
    for r in store.results():
        raw = json.loads(r["properties"])["refractive_index"]
        assert json.loads(r["objectives"])["refractive_index"] == pytest.approx(2 * raw - 1)
        assert r["refractive_index"] == raw  # the store's column keeps the raw value
    capsys.readouterr()
    assert main(["pareto", "cal", "--runs", str(tmp_path / "runs")]) == 0
    shown = capsys.readouterr().out
    best = max(store.results(), key=lambda r: json.loads(r["objectives"])["refractive_index"])
    assert f"{json.loads(best['objectives'])['refractive_index']:.4f}" in shown
    assert main(["export", "cal", "--runs", str(tmp_path / "runs"), "--format", "csv",
                 "--out", str(tmp_path / "e.csv")]) == 0
    export = pd.read_csv(tmp_path / "e.csv")
    done = export[export["status"] == "done"]
    assert np.allclose(done["refractive_index"], 2 * done["refractive_index_raw"] - 1)


@pytest.mark.skipif(not (SHARED / "data" / "optical_reference.csv").is_file(),
                    reason="../shared/data/optical_reference.csv is not here (developers' data)")
def test_radonpys_published_values_calibrated_leave_one_out():
    ref = read_reference(SHARED / "data" / "optical_reference.csv")
    cal = fit_calibration(ref, published_results(ref), "optical_reference.csv")
    abbe = cal.maps["radonpy-published"]["abbe_number"]
    print(f"published Abbe numbers: MAE {abbe.mae_raw:.2f} raw, {abbe.mae_loo:.2f} leave-one-out")
    assert abbe.n == 8 and abbe.mae_loo < abbe.mae_raw / 2  # RadonPy's Abbe numbers run ~2.3x low


def test_validation_table_prints_a_dash_for_a_blank_reference_cell(tmp_path):
    """A reference row may lack an experimental Abbe number (or n_D): the validation table shows "-" there and the
    MAE leaves the row out, instead of failing after the QM has run."""
    from benchmarks.validate_properties import errors, mae, table_row

    ref = write(tmp_path / "ref.csv", "id,smiles,exp_refractive_index,exp_abbe_number,handbook_density\n"
                                      "PTFE,*C(F)(F)C(*)(F)F,1.35,,2.0\nPS,*C(C*)c1ccccc1,1.592,31,1.05\n")
    table = read_reference(ref)
    results = {}
    for (_, row), (n_d, abbe) in zip(table.iterrows(), ((1.30, 110.0), (1.60, 29.0))):
        r = {"n_D": n_d, "abbe": abbe, "density_used": row["handbook_density"], "dispersion_ratio": 0.01,
             "stage_seconds": {"qm": 1.0}}
        results[row["id"]] = r | errors(r, row)
    ptfe = table_row(table.iloc[0], results["PTFE"]).split()
    assert ptfe[:5] == ["PTFE", "2.000", "1.300", "1.350", "-0.050"] and ptfe[6:9] == ["110.0", "-", "-"]
    assert "abbe_err" not in results["PTFE"] and mae(results, "abbe_err") == (pytest.approx(2.0), 1)
    assert mae(results, "n_D_err") == (pytest.approx((0.05 + 0.008) / 2), 2)


def test_nan_infinite_and_degenerate_maps_are_refused(tmp_path):
    """Issue 40, case 6: a map with slope NaN turned every result into NaN; an inf in the reference wrote
    slope nan; near-constant computed values wrote slope -1e9."""
    from workflow.campaign.calibration import load_calibration

    bad = write(tmp_path / "cal.yaml", "reference: ref.csv\nmaps:\n  smoke:\n    refractive_index: {slope: .nan, "
                                       "intercept: 0.1, n: 4, mae_raw: 0.1, mae_fit: 0.01, mae_loo: 0.02}\n")
    with pytest.raises(ConfigError, match="calibration file"):
        load_calibration(bad)
    reference = pd.DataFrame({"id": ["A", "B", "C", "D"], "smiles": ["*CC*", "*CC(*)C", "*CC(*)Cl", "*CC(*)F"],
                              "exp_refractive_index": [1.49, 1.49, 1.54, 1.42],
                              "exp_abbe_number": [57.0, 56.0, float("inf"), 60.0]})
    reference["canonical"] = reference["smiles"]
    results = reference[["smiles"]].assign(preset="smoke", refractive_index=[1.45, 1.46, 1.50, 1.40],
                                           abbe_number=[50.0, 51.0, 40.0, 55.0])
    with pytest.raises(ConfigError, match="reference polymer C: abbe_number 40 / exp_abbe_number inf"):
        fit_calibration(reference, results, "ref.csv")
    with pytest.raises(ConfigError, match="hardly differ"):
        fit_linear(np.array([1.5, 1.5, 1.5 + 1e-9, 1.5]), np.array([1.49, 1.50, 1.52, 1.48]))
