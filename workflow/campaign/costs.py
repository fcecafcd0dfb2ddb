"""What a property job costs, before it runs: core-seconds per stage, fitted from finished jobs.

Each stage's cost is a coefficient times what it scales with, known before the job runs:

| stage    | scales with                                      | from the record              |
|----------|--------------------------------------------------|------------------------------|
| qm       | n_basis^3 of the capped unit (SCF and response)  | ``qm_n_basis``, ``timings.qm`` |
| charges  | n_basis^3 of the monomer's charge fit (~ qm's)   | ``timings.monomer``          |
| md       | atoms x MD steps of the preset (cell and md)     | ``n_atoms_cell``, ``timings.cell + md`` |
| oracle   | one look-up (its simulated duration)             | ``wall_seconds``             |

times the job's cores (core-seconds). The coefficient of a stage and preset is the geometric mean of
the prior (the preset's measured figure, :data:`PRIORS`, worth one job) and every finished job's
coefficient (this campaign's and the other campaigns' under the same runs directory). A job's
prediction error is measured out of sample: the model of the jobs finished before it.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from workflow.campaign.config import Campaign
from workflow.campaign.store import Store
from workflow.job.presets import MDSettings, ProtocolPreset, QMSettings

STAGES = ("charges", "qm", "md")

PRIORS: dict[str, dict[str, float]] = {
    # core-seconds per n_basis^3 (qm, charges) and per atom x MD step (md), measured on the 2-core development
    # machine: qm and charges from the fidelity benchmark's smoke jobs (polyethylene: qm 3.1 s at 82 basis
    # functions, its ESP charge fit 2.1 s), md from the same jobs (cell + md 102.6 s for 302 atoms x 29,000 steps,
    # one core: 1.2e-5) and smoke's median job (58.5 s); quick's QM from issue 37's measured 20 s to 4 min per unit
    # on 2 cores (geometry optimisation included)
    # smoke's md from its one-chain cell (fidelity benchmark, one core: polyethylene cell + md 51.1 s, PVC 41.3 s for
    # about 300 atoms x 22,000 steps)
    "smoke": {"qm": 5.6e-6, "charges": 3.8e-6, "md": 7.0e-6},
    "quick": {"qm": 3.5e-5, "charges": 3.8e-6, "md": 1.3e-5},
    "full": {"qm": 3.5e-5, "charges": 3.8e-6, "md": 1.3e-5},
}
"""The prior of each built-in preset; another preset takes quick's where it optimises geometries, else smoke's."""


def md_steps(md: MDSettings) -> int:
    """Every MD step the preset asks for (relaxation, heating, compression, the 21-step, the sampling)."""
    return (md.relax_steps + md.heat_steps + md.compress_steps + sum(sum(row) for row in md.eq21_steps)
            + md.sampling_steps)


def basis_functions(psmiles: str, qm: QMSettings) -> int:
    """Basis functions of the capped repeat unit with the preset's basis (coordinates do not matter: a line)."""
    from pyscf import gto
    from rdkit import Chem

    from workflow.job.qm_geometry import capped_repeat_unit
    from workflow.job.qm_scf import basis_per_element

    mol = Chem.AddHs(capped_repeat_unit(psmiles, qm.cap))
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    atoms = [(s, (0.0, 0.0, 1.8 * i)) for i, s in enumerate(symbols)]
    spin = sum(Chem.GetPeriodicTable().GetAtomicNumber(s) for s in symbols) % 2
    return int(gto.M(atom=atoms, basis=basis_per_element(symbols, qm), spin=spin, verbose=0).nao)


@dataclass(frozen=True)
class JobCost:
    """Predicted core-seconds per stage of one polymer's job."""

    polymer_id: str
    core_seconds: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.core_seconds.values())


def features(preset: ProtocolPreset, n_basis: float, n_atoms: float) -> dict[str, float]:
    """What each stage's cost scales with."""
    return {"qm": n_basis ** 3, "charges": n_basis ** 3, "md": n_atoms * md_steps(preset.md)}


@dataclass
class CostModel:
    """Per-stage coefficients of one preset (or the oracle's mean look-up time)."""

    preset: str
    coefficients: dict[str, float]
    n_jobs: int = 0
    errors: list[float] = field(default_factory=list)  # out-of-sample relative errors of finished jobs, in order

    def predict(self, polymer_id: str, feature: dict[str, float]) -> JobCost:
        return JobCost(polymer_id, {s: self.coefficients[s] * feature[s] for s in self.coefficients})


def prior_for(preset: ProtocolPreset) -> dict[str, float]:
    prior = dict(PRIORS.get(preset.name) or PRIORS["quick" if preset.qm.optimize_geometry else "smoke"])
    if preset.charge_model in ("gasteiger", "zero"):  # no QM charge fit: next to nothing
        prior["charges"] = 1e-9
    return prior


def measured(record: dict) -> tuple[dict[str, float], dict[str, float]] | None:
    """A finished property job's core-seconds per stage and its features, from its record (None: not a property
    job's record, or one without timings)."""
    timings, cores = record.get("timings"), record.get("cores")
    n_basis, n_atoms = record.get("qm_n_basis"), record.get("n_atoms_cell")
    if not isinstance(timings, dict) or not cores or not n_basis or not n_atoms:
        return None
    spent = {"qm": timings.get("qm", 0.0) * cores, "charges": timings.get("monomer", 0.0) * cores,
             "md": (timings.get("cell", 0.0) + timings.get("md", 0.0)) * cores}
    return spent, {"n_basis": float(n_basis), "n_atoms": float(n_atoms)}


def finished_records(runs_dir: Path, preset: str) -> list[dict]:
    """Records of finished jobs run with ``preset`` in every campaign under ``runs_dir``, oldest first."""
    rows = []
    for path in sorted(Path(runs_dir).glob("*/campaign.sqlite")):
        try:
            store = Store(path, readonly=True)
        except Exception:  # a damaged or foreign store is not a reason to refuse a cost estimate
            continue
        try:
            for r in store.db.execute("SELECT preset, properties, recorded_at FROM results WHERE preset = ?",
                                      (preset,)):
                rows.append((r["recorded_at"], json.loads(r["properties"])))
        finally:
            store.close()
    return [rec for _, rec in sorted(rows, key=lambda t: t[0])]


def fit(preset: ProtocolPreset, records: list[dict]) -> CostModel:
    """The preset's model from finished records (oldest first), each job's error measured by the jobs before it."""
    prior = prior_for(preset)
    logs: dict[str, list[float]] = {s: [math.log(prior[s])] for s in STAGES}
    model = CostModel(preset.name, dict(prior))
    for record in records:
        got = measured(record)
        if got is None:
            continue
        spent, x = got
        f = features(preset, x["n_basis"], x["n_atoms"])
        predicted = sum(model.coefficients[s] * f[s] for s in STAGES)
        model.errors.append(predicted / sum(spent.values()) - 1.0)
        for s in STAGES:
            if spent[s] > 0:
                logs[s].append(math.log(spent[s] / f[s]))
        model.coefficients = {s: math.exp(statistics.fmean(v)) for s, v in logs.items()}
        model.n_jobs += 1
    return model


def predict_batch(campaign: Campaign, runs_dir: Path, picks: list[tuple[str, str]]) -> tuple[CostModel, list[JobCost]]:
    """Each picked ``(id, psmiles)``'s predicted core-seconds per stage (a property-job campaign)."""
    preset = campaign.preset
    model = fit(preset, finished_records(runs_dir, preset.name))
    atoms = preset.md.n_chains * preset.md.atoms_per_chain
    return model, [model.predict(pid, features(preset, basis_functions(smi, preset.qm), atoms)) for pid, smi in picks]


def spent_core_seconds(store: Store) -> dict[tuple[int, str], float]:
    """Core-seconds spent per (cycle, stage) by the campaign's finished jobs (failed ones have no record)."""
    out: dict[tuple[int, str], float] = {}
    for r in store.db.execute("SELECT j.cycle, r.properties FROM results r JOIN jobs j USING (job_id)"):
        record = json.loads(r["properties"])
        got = measured(record)
        if got is not None:
            for stage, seconds in got[0].items():
                out[r["cycle"], stage] = out.get((r["cycle"], stage), 0.0) + seconds
        elif isinstance(record.get("wall_seconds"), (int, float)):  # an oracle look-up: its simulated time
            out[r["cycle"], "oracle"] = out.get((r["cycle"], "oracle"), 0.0) + float(record["wall_seconds"])
    return out


def oracle_seconds(campaign: Campaign) -> float:
    """An oracle look-up's predicted core-seconds: the middle of its simulated duration."""
    lo, hi = campaign.oracle.duration_s
    return (lo + hi) / 2

