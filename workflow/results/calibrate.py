"""``workflow calibrate``: fit linear maps from computed to measured n_D and Abbe number, per preset.

The published study reported its optical numbers through linear maps fitted on a reference set
(26 polymers: n_D MAE 0.051 -> 0.024, Abbe number MAE 20.5 -> 2.8). ``workflow calibrate`` fits the
same maps on a reference table (``id, smiles, exp_refractive_index, exp_abbe_number``) and results
(exports or campaigns) matched by canonical PSMILES, and reports each fit with its leave-one-out
MAE. The campaign reads the file it writes (:mod:`workflow.campaign.calibration`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from workflow.campaign.calibration import (
    CALIBRATED,
    MIN_MATCHES,
    Calibration,
    LinearMap,
)
from workflow.campaign.store import JobState
from workflow.common.chem import canonical_psmiles
from workflow.common.errors import ConfigError
from workflow.common.tables import read_table


def fit_linear(x: np.ndarray, y: np.ndarray) -> LinearMap:
    """Least-squares line through ``(x, y)``, its in-sample and leave-one-out MAE (``n >= 3`` points). Computed
    values that hardly differ define no line (its slope would be any number): refused."""
    if np.ptp(x) <= 1e-6 * max(1.0, float(np.max(np.abs(x)))):
        raise ConfigError(f"the computed values hardly differ ({np.min(x):.6g} to {np.max(x):.6g}): a line through "
                          f"them is not determined; calibrate on polymers that differ")
    slope, intercept = np.polyfit(x, y, 1)
    loo = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        s, b = np.polyfit(x[keep], y[keep], 1)
        loo.append(abs(s * x[i] + b - y[i]))
    return LinearMap(slope=float(slope), intercept=float(intercept), n=len(x),
                     mae_raw=float(np.mean(np.abs(x - y))), mae_fit=float(np.mean(np.abs(slope * x + intercept - y))),
                     mae_loo=float(np.mean(loo)))


def read_reference(path: Path) -> pd.DataFrame:
    """The reference table, one row per canonical PSMILES (a missing column is a one-line error)."""
    df = read_table(Path(path), keep_text=False, what="reference")
    missing = [c for c in ("id", "smiles", *CALIBRATED.values()) if c not in df.columns]
    if missing:
        raise ConfigError(f"reference file {path} lacks column(s) {', '.join(missing)}")
    df = df.copy()
    df["canonical"] = [canonical_psmiles(s) if isinstance(s, str) else None for s in df["smiles"]]
    return df[df["canonical"].notna()].drop_duplicates("canonical")


def fit_calibration(reference: pd.DataFrame, results: pd.DataFrame, reference_name: str) -> Calibration:
    """Maps for every preset of ``results`` (columns ``smiles``, ``preset``, the computed properties).

    A property needs :data:`MIN_MATCHES` reference polymers with finite computed and experimental
    values under one preset; fewer is a one-line error naming them.
    """
    results = results.copy()
    results["canonical"] = [canonical_psmiles(s) if isinstance(s, str) else None for s in results["smiles"]]
    merged = results.merge(reference, on="canonical", suffixes=("", "_reference"))
    maps: dict[str, dict[str, LinearMap]] = {}
    for preset, rows in merged.groupby("preset"):
        for prop, exp in CALIBRATED.items():
            if prop not in rows.columns:
                continue
            numbers = rows[[prop, exp]].apply(pd.to_numeric, errors="coerce").dropna()
            infinite = numbers[~np.isfinite(numbers.to_numpy(dtype=float)).all(axis=1)]
            if len(infinite):
                row = rows.loc[infinite.index[0]]
                raise ConfigError(f"reference polymer {row.get('id', row['smiles'])}: {prop} "
                                  f"{numbers.loc[infinite.index[0], prop]:g} / {exp} "
                                  f"{numbers.loc[infinite.index[0], exp]:g} is not a finite pair")
            pair = numbers.to_numpy(dtype=float)
            if len(pair) < MIN_MATCHES:
                raise ConfigError(f"preset {preset}: only {len(pair)} polymer(s) of the reference have a computed "
                                  f"{prop} (need {MIN_MATCHES} to fit and check a line)")
            maps.setdefault(str(preset), {})[prop] = fit_linear(pair[:, 0], pair[:, 1])
    if not maps:
        raise ConfigError(f"no result matches a polymer of the reference (0 of {len(reference)}; need "
                          f"{MIN_MATCHES}): compare the PSMILES")
    return Calibration(reference=reference_name, maps=maps)


def published_results(reference: pd.DataFrame) -> pd.DataFrame:
    """RadonPy's published computed values in the reference table (``radonpy_*`` columns) as results."""
    cols = {f"radonpy_{p}": p for p in CALIBRATED}
    missing = [c for c in cols if c not in reference.columns]
    if missing:
        raise ConfigError(f"the reference lacks column(s) {', '.join(missing)} (RadonPy's published values)")
    return reference[["smiles", *cols]].rename(columns=cols).assign(preset="radonpy-published")


def results_table(path: Path) -> pd.DataFrame:
    """Finished polymers of an export (or of a campaign's store, given its ``campaign.sqlite``)."""
    if Path(path).suffix == ".sqlite":
        from workflow.campaign.store import Store
        from workflow.results.report import export_frame

        store = Store(path, readonly=True)
        try:
            df = export_frame(store)
        finally:
            store.close()
    else:
        df = read_table(Path(path), keep_text=False, what="results")
    if "status" in df.columns:
        df = df[df["status"] == JobState.DONE]
    for prop in CALIBRATED:  # an export of a calibrated campaign: fit on the raw values
        if f"{prop}_raw" in df.columns:
            df = df.assign(**{prop: df[f"{prop}_raw"]})
    missing = [c for c in ("smiles", "preset") if c not in df.columns]
    if missing:
        raise ConfigError(f"results {path} lack column(s) {', '.join(missing)} (use `workflow export`)")
    return df


def save_calibration(cal: Calibration, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cal.model_dump(mode="json"), sort_keys=False))
