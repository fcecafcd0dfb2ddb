"""What a property job produces, as typed models: each stage's result, and the record built from them.

| model          | stage    | what                                                           |
|----------------|----------|----------------------------------------------------------------|
| `PrepResult`   | `prep`   | the monomer's MD charges and molecular weight                  |
| `QMResult`     | `qm`     | polarizabilities of the repeat unit, the QM method, its timings |
| `MDResult`     | `md`     | density and the equilibrium and orientation checks             |
| `OpticsResult` | `record` | n_D (Lorentz-Lorenz) at the three wavelengths, Abbe number     |
| `Provenance`   | `record` | preset, protocol, software, cores, timings                     |

:class:`PropertyRecord` is the union of the last four (``record.json``): their field names are
disjoint by construction (checked when this module is imported), so no result overwrites another.
Fields marked with :func:`objective` are the properties a campaign may optimise; the campaign
file's check, the store's result columns and the reports all derive from
:data:`OBJECTIVE_PROPERTIES`. A new objective is one such field in the result of the stage that
computes it, plus that computation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflow.job.presets import WAVELENGTHS_NM

_F, _D, _C = (f"{wl:g}nm" for wl in WAVELENGTHS_NM)
QM_SCREEN_FIELDS = {"polarizability_d": f"polarizability_{_D}", "mol_weight": "mol_weight_unit",
                    "polarizability_f": f"polarizability_{_F}", "polarizability_c": f"polarizability_{_C}"}
"""The record's (and a QM job's result's) keys of what a qm-first campaign reads from the QM stage."""


def objective(description: str) -> Any:
    """A record field that campaigns may name as an objective."""
    return Field(description=description, json_schema_extra={"objective": True})


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    def as_json(self) -> dict[str, Any]:
        """As written to the job directory (wavelength fields under their published names)."""
        return self.model_dump(mode="json", by_alias=True)


class PrepResult(_Result):
    psmiles: str
    charge_model: str = Field(description="the MD charges used (esp where resp was asked for without Psi4)")
    charge_model_requested: str
    charges: list[float]
    mol_weight: float
    n_atoms_unit: int


class QMResult(_Result):
    """The ``qm`` stage: isotropic polarizabilities (A^3) of the repeat unit, capped unit less the cap reference."""

    functional: str
    basis: str
    qm_auxbasis: str = Field(description="density-fitting basis of the polarizabilities; 'none': exact integrals")
    dispersion_ratio: float = Field(description="(alpha_F - alpha_C) / alpha_D of the repeat unit")
    polarizability_static: float
    polarizability_f: float = Field(alias=f"polarizability_{_F}")
    polarizability_d: float = Field(alias=f"polarizability_{_D}")
    polarizability_c: float = Field(alias=f"polarizability_{_C}")
    scf_energy_hartree: float
    qm_n_basis: int
    qm_response_iterations: int
    qm_geometry_opt_steps: int
    polarizability_capped_static: float
    polarizability_cap_static: float
    polarizability_cap_f: float = Field(alias=f"polarizability_cap_{_F}")
    polarizability_cap_d: float = Field(alias=f"polarizability_cap_{_D}")
    polarizability_cap_c: float = Field(alias=f"polarizability_cap_{_C}")
    qm_seconds_conformers: float
    qm_seconds_geometry: float
    qm_seconds_scf: float
    qm_seconds_response: float
    qm_seconds_cap: float

    def dynamic(self) -> tuple[float, float, float]:
        """alpha at the F, D and C lines (A^3), in :data:`WAVELENGTHS_NM` order."""
        return self.polarizability_f, self.polarizability_d, self.polarizability_c


class MDResult(_Result):
    """The ``md`` stage: the equilibrated cell's density and its checks."""

    density: float = objective("g/cm^3, mean over the last analysis window of NPT sampling")
    density_sd: float
    density_sem: float = Field(description="standard error of the density: block averages of the analysis window")
    equilibrated: bool
    equilibrium_details: dict[str, float]
    additional_sampling_runs: int
    nematic_order: float
    n_units_per_chain: int
    n_atoms_cell: int


class OpticsResult(_Result):
    """Lorentz-Lorenz refractive indices from the ``qm`` polarizabilities and the ``md`` density."""

    refractive_index: float = objective("n_D at 589.3 nm (Lorentz-Lorenz)")
    abbe_number: float = objective("(n_D - 1) / (n_F - n_C)")
    refractive_index_static: float
    refractive_index_f: float = Field(alias=f"refractive_index_{_F}")
    refractive_index_c: float = Field(alias=f"refractive_index_{_C}")
    refractive_index_sem: float = Field(description="n_D's standard error from the density's (the QM is exact)")
    abbe_number_sem: float = Field(description="the Abbe number's standard error from the density's")


class Provenance(_Result):
    """How the record was made."""

    psmiles: str
    mol_weight_unit: float
    charge_model: str
    preset: str
    protocol: dict[str, Any]
    versions: dict[str, str]
    cores: int
    timings: dict[str, float]
    started_at: float
    wall_seconds: float


RECORD_PARTS: tuple[type[_Result], ...] = (QMResult, MDResult, OpticsResult, Provenance)


def _disjoint(parts: tuple[type[BaseModel], ...]) -> None:
    seen: dict[str, str] = {}
    for part in parts:
        for name, field in part.model_fields.items():
            for key in {name, field.alias or name}:
                if key in seen:
                    raise TypeError(f"record field {key!r} is in both {seen[key]} and {part.__name__}")
                seen[key] = part.__name__


_disjoint(RECORD_PARTS)


class PropertyRecord(QMResult, MDResult, OpticsResult, Provenance):
    """One finished property job (``record.json``): the fields of :data:`RECORD_PARTS`, nothing else."""

    @classmethod
    def from_parts(cls, qm: QMResult, md: MDResult, optics: OpticsResult, provenance: Provenance) -> "PropertyRecord":
        fields = {name: getattr(part, name) for part in (qm, md, optics, provenance) for name in type(part).model_fields}
        return cls.model_validate(fields)


OBJECTIVE_PROPERTIES: tuple[str, ...] = tuple(
    name for name, f in PropertyRecord.model_fields.items()
    if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("objective"))
"""Properties of the record a campaign may optimise (without an oracle table)."""
