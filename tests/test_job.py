"""The smoke property job, for real: RadonPy + LAMMPS + PySCF on polyethylene."""

import json
import math

import pytest

from workflow.job import JobFailure, run_property_job


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    job_dir = tmp_path_factory.mktemp("job")
    return job_dir, run_property_job("*CC*", "smoke", job_dir, cores=2, seed=3)


def test_smoke_job_gives_physical_ranges(smoke_record):
    _, rec = smoke_record
    assert 0.5 < rec["density"] < 2.0
    assert math.isfinite(rec["refractive_index"]) and rec["refractive_index"] > 1.0
    assert rec["abbe_number"] > 0
    # normal dispersion: n_F > n_D > n_C, alpha(486 nm) > alpha(static)
    assert rec["refractive_index_486.1nm"] > rec["refractive_index"] > rec["refractive_index_656.3nm"]
    assert rec["polarizability_486.1nm"] > rec["polarizability_static"] > 0
    assert 200 <= rec["n_atoms_cell"] <= 500  # smoke: a few hundred atoms
    assert rec["preset"] == "smoke" and rec["versions"]["lammps"] != "not installed"


def test_smoke_job_leaves_its_stages_and_resumes_without_recomputing(smoke_record):
    job_dir, rec = smoke_record
    for name in ("prep.json", "qm.json", "cell.pickle", "md/packing.done", "md/eq21.done", "md/sampling.done",
                 "record.json", "md/eq3.log"):
        assert (job_dir / name).is_file(), name
    # a job killed after QM and MD resumes from its files: drop only the final record
    qm_before = (job_dir / "qm.json").stat().st_mtime_ns
    md_before = (job_dir / "md" / "sampling.done").stat().st_mtime_ns
    (job_dir / "record.json").unlink()
    again = run_property_job("*CC*", "smoke", job_dir, cores=2, seed=3)
    assert (job_dir / "qm.json").stat().st_mtime_ns == qm_before
    assert (job_dir / "md" / "sampling.done").stat().st_mtime_ns == md_before
    assert again["density"] == rec["density"] and again["abbe_number"] == rec["abbe_number"]
    assert "qm" not in again["timings"] and "md_sampling" not in again["timings"]
    assert json.loads((job_dir / "record.json").read_text())["refractive_index"] == rec["refractive_index"]


@pytest.mark.parametrize("smiles, needle", [("*CC(*)X", "cannot parse"), ("*CC", "exactly 2"),
                                            ("*C[Si](C)(C)*", "Si")])
def test_invalid_input_fails_before_any_work(tmp_path, smiles, needle):
    with pytest.raises(JobFailure) as err:
        run_property_job(smiles, "smoke", tmp_path / "j")
    assert err.value.kind == "invalid_input" and err.value.stage == "prep" and needle in err.value.message
    assert not (tmp_path / "j" / "qm.json").exists()
