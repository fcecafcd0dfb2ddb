"""Reading an NPT sampling run (RadonPy's analysis): the density over the last window and the equilibrium verdict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workflow.job.md_cell import MDError
from workflow.job.presets import MDSettings


@dataclass(frozen=True)
class Equilibrium:
    density: float
    density_sd: float
    equilibrated: bool
    details: dict[str, float]


RELATIVE_LIMITS = ("totene", "kinene", "ebond", "eangle", "edihed", "elong", "dens")
"""RadonPy's convergence limits that are fractions of the mean (``check_eq``); the vdW limit is absolute."""


def analyze(analysis, settings: MDSettings) -> Equilibrium:
    """Density over the last analysis window and RadonPy's equilibrium verdict."""
    s = settings
    rows = len(analysis.dfs[-1]) if analysis.dfs else 0
    if rows <= s.analysis_init + 1:
        raise MDError(f"sampling log has {rows} thermo rows; the analysis window needs more than {s.analysis_init}")
    analysis.get_all_prop(temp=s.temp, press=s.press, init=s.analysis_init, width=s.analysis_width,
                          f_width=s.analysis_width, do_traj=False)
    for name in RELATIVE_LIMITS:  # RadonPy's limits, scaled to the cell and window (MDSettings.convergence_scale)
        limit = getattr(analysis, f"{name}_sma_sd_crit", None)
        if limit is not None:
            setattr(analysis, f"{name}_sma_sd_crit", limit * s.convergence_scale)
    verdict = bool(analysis.check_eq())
    details: dict[str, float] = {}
    for name in ("totene", "kinene", "ebond", "eangle", "edihed", "evdw", "elong", "dens"):
        data = getattr(analysis, f"{name}_data", {}) or {}
        if data.get("mean") is not None:
            details[f"{name}_mean"] = float(data["mean"])
            details[f"{name}_sma_sd"] = float(data["sma_sd"])
    density = float(analysis.dens_data["mean"])
    if not np.isfinite(density):
        raise MDError("density from the sampling run is not finite")
    return Equilibrium(density=density, density_sd=float(analysis.dens_data["sd"]), equilibrated=verdict, details=details)
