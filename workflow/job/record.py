"""The property job's record: what one polymer's job produces, as a typed model.

Fields marked ``objective=True`` are the properties a campaign may optimise; the campaign file's
check, the store's result columns and the reports all derive from :data:`OBJECTIVE_PROPERTIES`.
A new objective is one field here plus the stage that computes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflow.job.presets import WAVELENGTHS_NM


def objective(description: str) -> Any:
    """A record field that campaigns may name as an objective."""
    return Field(description=description, json_schema_extra={"objective": True})


class PropertyRecord(BaseModel):
    """One finished property job (``record.json``); the polarizabilities come from the ``qm`` stage."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    psmiles: str
    refractive_index: float = objective("n_D at 589.3 nm (Lorentz-Lorenz)")
    abbe_number: float = objective("(n_D - 1) / (n_F - n_C)")
    density: float = objective("g/cm^3, mean over the last analysis window of NPT sampling")
    density_sd: float
    refractive_index_static: float
    refractive_index_f: float = Field(alias=f"refractive_index_{WAVELENGTHS_NM[0]:g}nm")
    refractive_index_c: float = Field(alias=f"refractive_index_{WAVELENGTHS_NM[2]:g}nm")
    mol_weight_unit: float
    functional: str
    basis: str
    qm_auxbasis: str = Field(description="density-fitting basis of the polarizabilities; 'none': exact integrals")
    dispersion_ratio: float = Field(description="(alpha_F - alpha_C) / alpha_D of the repeat unit")
    equilibrated: bool
    additional_sampling_runs: int
    nematic_order: float
    equilibrium_details: dict[str, float]
    n_units_per_chain: int
    n_atoms_cell: int
    charge_model: str
    preset: str
    protocol: dict[str, Any]
    versions: dict[str, str]
    cores: int
    timings: dict[str, float]
    started_at: float
    wall_seconds: float

    def as_json(self) -> dict[str, Any]:
        """The record as written to ``record.json`` (wavelength fields under their published names)."""
        return self.model_dump(mode="json", by_alias=True)


OBJECTIVE_PROPERTIES: tuple[str, ...] = tuple(
    name for name, f in PropertyRecord.model_fields.items()
    if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("objective"))
"""Properties of the record a campaign may optimise (without an oracle table)."""
