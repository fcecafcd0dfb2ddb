"""The smoke property job, for real: RadonPy + LAMMPS + PySCF on polypropylene (one job, shared)."""

import json
import math

import pytest

from workflow.job import JobFailure, JobSpec, run_property_job
from workflow.job.presets import SMOKE

pytestmark = pytest.mark.physics  # a real smoke job: RadonPy, LAMMPS, PySCF


def spec(psmiles, preset=SMOKE, cores=2, seed=0):
    return JobSpec(psmiles, preset, seed=seed, cores=cores)


@pytest.fixture(scope="module")
def smoke_job(tmp_path_factory):
    """The one real smoke job of this file (polypropylene): its inputs written by `workflow job inputs`, the
    directory's state then, and the record of the job run on that directory."""
    import subprocess
    import sys

    job_dir = tmp_path_factory.mktemp("job") / "pp"
    out = subprocess.run([sys.executable, "-m", "workflow.cli", "job", "inputs", "*CC(*)C", "--preset", "smoke",
                          "--dir", str(job_dir), "--cores", "2", "--seed", "3"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    before = {"listed": [ln for ln in out.stdout.splitlines() if ln.strip()],
              "logs": list((job_dir / "md").glob("*.log")), "qm": (job_dir / "qm.json").exists(),
              "cell_mtime": (job_dir / "cell.pickle").stat().st_mtime_ns}
    return job_dir, before, run_property_job(spec("*CC(*)C", seed=3), job_dir)


@pytest.fixture
def smoke_record(smoke_job):
    job_dir, _, rec = smoke_job
    return job_dir, rec


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
    # the record says how the polarizabilities were computed, and the dispersion behind the Abbe number
    assert (rec["functional"], rec["basis"]) == ("b3lyp", "aug-pcseg-0") and rec["qm_auxbasis"] != "none"
    alpha = [rec[f"polarizability_{wl}nm"] for wl in ("486.1", "589.3", "656.3")]
    assert rec["dispersion_ratio"] == pytest.approx((alpha[0] - alpha[2]) / alpha[1])
    # smoke's polarizabilities are of the right size (a diffuse basis): at polypropylene's handbook density
    # (0.90 g/cm^3) they give n_D 1.49 +- 0.05 (a minimal basis gave ~1.3); the smoke cell's own density is lighter
    from workflow.job.optics import lorentz_lorenz

    assert lorentz_lorenz(alpha[1], 0.90, rec["mol_weight_unit"]) == pytest.approx(1.49, abs=0.05)
    assert 1.2 < rec["refractive_index"] < 1.55 and 30 < rec["abbe_number"] < 120


def test_smoke_job_leaves_its_stages_and_resumes_without_recomputing(smoke_record):
    job_dir, rec = smoke_record
    for name in ("prep.json", "qm.json", "cell.pickle", "md/stages/packing.json", "md/stages/eq21.json",
                 "md/stages/sampling.json", "stages/record.json", "record.json", "md/eq3.log"):
        assert (job_dir / name).is_file(), name
    # a job killed after QM and MD resumes from its files: drop only the final record
    qm_before = (job_dir / "qm.json").stat().st_mtime_ns
    md_before = (job_dir / "md" / "stages" / "sampling.json").stat().st_mtime_ns
    (job_dir / "record.json").unlink()
    again = run_property_job(spec("*CC(*)C", seed=3), job_dir)
    assert (job_dir / "qm.json").stat().st_mtime_ns == qm_before
    assert (job_dir / "md" / "stages" / "sampling.json").stat().st_mtime_ns == md_before
    assert again["density"] == rec["density"] and again["abbe_number"] == rec["abbe_number"]
    assert "qm" not in again["timings"] and "md_sampling" not in again["timings"]
    assert json.loads((job_dir / "record.json").read_text())["refractive_index"] == rec["refractive_index"]


@pytest.mark.parametrize("smiles, needle", [("*CC(*)X", "cannot parse"), ("*CC", "exactly 2"),
                                            ("*C[Si](C)(C)*", "Si"), ("*CC(*)[Se]C", "Se"),
                                            ("*" + "C" * 60 + "*", "180 atoms: preset smoke's chains of ~300 atoms")])
def test_invalid_input_fails_before_any_work(tmp_path, smiles, needle):
    with pytest.raises(JobFailure) as err:
        run_property_job(spec(smiles, cores=1), tmp_path / "j")
    assert err.value.kind == "invalid_input" and err.value.stage == "prep" and needle in err.value.message
    assert not (tmp_path / "j" / "qm.json").exists()


def test_job_inputs_are_written_without_running_and_the_job_starts_from_them(smoke_job):
    job_dir, before, rec = smoke_job
    listed = before["listed"]
    assert {p.split("/")[-1] for p in listed} >= {"qm_input.json", "qm_geometry.xyz", "prep.json", "cell.pickle",
                                                  "eq1.data", "eq1.in", "eq2.in", "eq3.in"}
    qm_in = json.loads((job_dir / "qm_input.json").read_text())
    assert qm_in["functional"] == "b3lyp" and qm_in["basis"] == {"C": "aug-pcseg-0", "H": "aug-pcseg-0"}
    assert len(qm_in["geometry_angstrom"]) == 3 * 3 + 2 * 3 + 2  # CH3-CH2-CH(CH3)-CH3: C5H12
    assert "run 3000" in (job_dir / "md" / "eq3.in").read_text()
    assert not before["logs"] and not before["qm"]  # nothing ran
    assert rec["density"] > 0.5 and (job_dir / "cell.pickle").stat().st_mtime_ns == before["cell_mtime"]


def test_unequilibrated_job_samples_more_then_fails_and_a_retry_samples_once_more(smoke_record, tmp_path):
    """A preset from a file: smoke, but RadonPy's equilibrium check is required and one extra run allowed.
    A few thousand steps of a 300-atom cell do not pass RadonPy's check, so the job runs RadonPy's
    additional sampling (eq4), then fails as not_equilibrated; a campaign retry grants one more (eq5).
    It starts from a copy of the smoke job: the same cell and LAMMPS runs, so only the extra runs are new."""
    import shutil

    import yaml

    from workflow.job import grant_retry
    from workflow.job.presets import SMOKE, load_preset

    data = SMOKE.model_dump(mode="json")
    data["name"] = "smoke-eq"
    data["md"].update(require_equilibrium=True, max_additional_runs=1)
    preset_file = tmp_path / "smoke-eq.yaml"
    preset_file.write_text(yaml.safe_dump(data))
    preset = load_preset(str(preset_file))
    job_dir = tmp_path / "job"
    shutil.copytree(smoke_record[0], job_dir)
    sampled = (job_dir / "md" / "stages" / "sampling.json").stat().st_mtime_ns
    with pytest.raises(JobFailure) as err:
        run_property_job(spec("*CC(*)C", preset, seed=3), job_dir)
    assert (job_dir / "md" / "stages" / "sampling.json").stat().st_mtime_ns == sampled  # reused, not rerun
    assert err.value.kind == "not_equilibrated" and "after 1 additional" in err.value.message
    md = job_dir / "md"
    assert (md / "stages" / "additional1.json").is_file() and (md / "eq4.log").is_file()
    assert not (md / "eq5.in").exists()
    assert "read_data eq4.data" in (md / "eq4.in").read_text()
    first = (md / "stages" / "additional1.json").stat().st_mtime_ns

    grant_retry(job_dir, "not_equilibrated")
    with pytest.raises(JobFailure) as err:
        run_property_job(spec("*CC(*)C", preset, seed=3), job_dir)
    assert "after 2 additional" in err.value.message
    assert (md / "stages" / "additional2.json").is_file()
    assert (md / "stages" / "additional1.json").stat().st_mtime_ns == first


def test_orientation_is_measured_and_an_aligned_cell_fails_as_oriented(smoke_record, tmp_path):
    import shutil

    from workflow.job.presets import SMOKE

    job_dir, rec = smoke_record
    assert 0.0 <= rec["nematic_order"] < 1.0  # mdtraj's order parameter of the repeat units
    copy = tmp_path / "job"
    shutil.copytree(job_dir, copy)
    (copy / "record.json").unlink()
    strict = SMOKE.model_copy(update={"name": "smoke-strict",
                                      "md": SMOKE.md.model_copy(update={"nematic_order_max": rec["nematic_order"]})})
    md_done = (copy / "stages" / "md.json").stat().st_mtime_ns
    with pytest.raises(JobFailure) as err:
        run_property_job(spec("*CC(*)C", strict, seed=3), copy)  # resumes: only the verdicts run again
    assert err.value.kind == "oriented" and f"{rec['nematic_order']:.3f}" in err.value.message
    assert (copy / "stages" / "md.json").stat().st_mtime_ns == md_done


def test_a_job_directory_of_another_polymer_or_preset_is_not_reused(smoke_record):
    from workflow.job import finished_record
    from workflow.job.presets import SMOKE

    job_dir, rec = smoke_record
    assert finished_record(spec("*CC(*)C", seed=3), job_dir)["density"] == rec["density"]
    assert finished_record(spec("*CC*", seed=3), job_dir) is None  # another polymer
    other = SMOKE.model_copy(update={"name": "smoke-b", "qm": SMOKE.qm.model_copy(update={"basis": "3-21g"})})
    assert finished_record(spec("*CC(*)C", other, seed=3), job_dir) is None  # another preset
    assert finished_record(spec("*CC(*)C", seed=4), job_dir) is None  # another seed



def test_a_warning_inside_the_thermo_table_does_not_hide_the_sampling_rows(smoke_record, tmp_path):
    """LAMMPS prints e.g. "Bond/angle/dihedral extent > half of periodic box length" in the middle of the thermo
    table of a small cell (poly(2-vinylnaphthalene) in the demo); RadonPy's parser then read no rows at all."""
    import shutil

    from radonpy.sim.preset.eq import Equilibration_analyze

    from workflow.job import md as mdmod
    from workflow.job import md_analysis
    from workflow.job.presets import SMOKE

    job_dir, rec = smoke_record
    work = tmp_path / "md"
    shutil.copytree(job_dir / "md", work)
    lines = (work / "eq3.log").read_text().splitlines(keepends=True)
    header = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["Step", "Time"])
    lines.insert(header + 20, "WARNING: Bond/angle/dihedral extent > half of periodic box length (src/domain.cpp:1174)\n")
    (work / "eq3.log").write_text("".join(lines))

    def density(log):
        a = Equilibration_analyze(log_file=str(work / log), traj_file=str(work / "eq3.xtc"),
                                  pdb_file=str(work / "cell.pdb"), dat_file=str(work / "eq3.data"),
                                  rg_file=str(work / "rg3.profile"))
        return md_analysis.analyze(a, SMOKE.md).density

    with pytest.raises(mdmod.MDError, match="0 thermo rows"):
        density("eq3.log")
    clean = mdmod.MDRunner(work, SMOKE.md, 1)._thermo_log("eq3.log")
    assert density(clean) == pytest.approx(rec["density"], rel=1e-9)
    assert "WARNING: Bond/angle" in (work / "eq3.log").read_text()  # the log itself is kept as written


def test_convergence_limits_scale_with_the_preset(smoke_record):
    """MDSettings.convergence_scale multiplies RadonPy's relative limits (energies, density), not the absolute
    vdW one; a limit loose enough for every relative term leaves only the others to decide."""
    from radonpy.sim.preset.eq import Equilibration_analyze

    from workflow.job import md_analysis
    from workflow.job.presets import SMOKE

    job_dir, rec = smoke_record
    work = job_dir / "md"

    def run(scale):
        a = Equilibration_analyze(log_file=str(work / "eq3.thermo.log"), traj_file=str(work / "eq3.xtc"),
                                  pdb_file=str(work / "cell.pdb"), dat_file=str(work / "eq3.data"),
                                  rg_file=str(work / "rg3.profile"))
        eq = md_analysis.analyze(a, SMOKE.md.model_copy(update={"convergence_scale": scale}))
        return a, eq

    strict, eq1 = run(1.0)
    assert strict.dens_sma_sd_crit == 0.001 and strict.kinene_sma_sd_crit == 0.0005  # RadonPy's own
    loose, eq2 = run(4.5)
    assert loose.dens_sma_sd_crit == pytest.approx(0.0045) and loose.edihed_sma_sd_crit == pytest.approx(0.009)
    assert loose.evdw_sma_sd_crit == strict.evdw_sma_sd_crit == 30.0
    assert eq2.details == eq1.details and eq2.density == eq1.density  # the same numbers, judged differently
    ratio = max(eq1.details[f"{n}_sma_sd"] / abs(eq1.details[f"{n}_mean"]) / getattr(strict, f"{n}_sma_sd_crit")
                for n in md_analysis.RELATIVE_LIMITS if f"{n}_mean" in eq1.details)
    assert ratio > 1  # 3,000 steps of a 300-atom cell do not pass RadonPy's limits...
    _, eq3 = run(ratio * 1.01)  # ...but every relative term passes limits just above the worst of them
    vdw_ok = eq1.details["evdw_sma_sd"] <= 30.0
    rg = strict.rg_data or {}
    rg_ok = rg.get("sd_max") is None or rg["sd_max"] <= rg["mean_mean"] * 0.01
    assert eq3.equilibrated == (vdw_ok and rg_ok)


@pytest.mark.slow  # a second real smoke job; CI runs it in its second step
def test_the_same_job_twice_from_scratch_gives_the_same_record(smoke_job, tmp_path):
    """Issue 38, item 4: a preset's result is a function of the polymer, the preset and the seed (the same cores)."""
    _, _, first = smoke_job
    again = run_property_job(spec("*CC(*)C", seed=3), tmp_path / "again")
    for key in ("density", "density_sd", "refractive_index", "abbe_number", "polarizability_589.3nm", "n_atoms_cell",
                "charges_sum" if "charges_sum" in first else "n_units_per_chain"):
        assert again[key] == first[key], (key, again[key], first[key])
