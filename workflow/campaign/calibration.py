"""A campaign's calibration file: linear maps from computed to measured n_D and Abbe number, per preset.

A campaign that names the file (``calibration: cal.yaml``) selects, ranks and exports on the
calibrated values; its store and its exports keep the raw ones too. ``workflow calibrate``
(:mod:`workflow.results.calibrate`) fits the maps.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflow.common.errors import ConfigError, load_yaml_mapping, one_line

CALIBRATED = {"refractive_index": "exp_refractive_index", "abbe_number": "exp_abbe_number"}
"""Computed property -> the reference table's experimental column."""
MIN_MATCHES = 4


class LinearMap(BaseModel):
    """``experimental = slope * computed + intercept``, with how well it did on its data."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # a NaN map maps every result to NaN
    slope: float
    intercept: float
    n: int = Field(description="reference polymers matched")
    mae_raw: float = Field(description="MAE of the computed values against experiment")
    mae_fit: float = Field(description="MAE of the calibrated values (in-sample)")
    mae_loo: float = Field(description="leave-one-out MAE: each polymer predicted by a map fitted on the others")

    def __call__(self, value: float) -> float:
        return self.slope * value + self.intercept


class Calibration(BaseModel):
    """Maps per preset and property; what they were fitted on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reference: str
    maps: dict[str, dict[str, LinearMap]] = Field(description="preset -> property -> map")

    def apply(self, preset: str, values: dict[str, float]) -> dict[str, float]:
        """``values`` with every property this calibration maps for ``preset`` mapped (others unchanged)."""
        maps = self.maps.get(preset, {})
        return {k: maps[k](v) if k in maps else v for k, v in values.items()}


def load_calibration(path: Path) -> Calibration:
    data = load_yaml_mapping(Path(path), "calibration")
    try:
        return Calibration.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"calibration file {path}: {one_line(exc)}") from None
