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
    density_sem: float
    equilibrated: bool
    details: dict[str, float]


BLOCKS = 5
"""Blocks of the analysis window whose means give the density's standard error (:func:`block_standard_error`)."""


def block_standard_error(series: np.ndarray, blocks: int = BLOCKS) -> float:
    """Standard error of a correlated series' mean from the spread of ``blocks`` consecutive block means
    (Flyvbjerg and Petersen's block averaging at one block length; a ragged tail is left out).

    Rows of a thermo log are correlated over the barostat's time: the spread of the rows over sqrt(rows) (RadonPy's
    ``se``) understates the mean's uncertainty; block means a window's fifth long are close to independent where the
    window is several barostat times long, and understate it less.
    """
    series = np.asarray(series, dtype=float)
    size = len(series) // blocks
    if blocks < 2 or size < 1:
        raise ValueError(f"{len(series)} values cannot make {blocks} blocks")
    means = series[: size * blocks].reshape(blocks, size).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(blocks))


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
    window = analysis.dfs[-1]["Density"].to_numpy()[-s.analysis_width:]  # the rows behind RadonPy's mean
    return Equilibrium(density=density, density_sd=float(analysis.dens_data["sd"]),
                       density_sem=block_standard_error(window), equilibrated=verdict, details=details)
