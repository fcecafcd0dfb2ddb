"""The campaign's candidates: the usable pool with its descriptors, and results of earlier campaigns.

Results exported from earlier campaigns (``initial_data``) join the training data from cycle 0 on
and count toward the initial design; pool polymers among them are never submitted.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from surrogate.descriptor import featurize
from surrogate.gp import DTYPE
from surrogate.pareto import to_max_form
from workflow.campaign.config import Campaign
from workflow.campaign.pool import load_pool
from workflow.campaign.store import JobState
from workflow.common.chem import canonical_psmiles
from workflow.common.errors import ConfigError
from workflow.common.progress import progress
from workflow.common.tables import read_table

log = logging.getLogger(__name__)


@dataclass
class PriorData:
    """Finished polymers from earlier campaigns' exports, as training data (maximisation form)."""

    X: torch.Tensor
    Y: torch.Tensor
    known: set[str]  # pool ids among them: never submitted

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass
class Candidates:
    """The usable pool (descriptor rows ``X``, ``n x d``) and the prior data."""

    ids: list[str]
    smiles: dict[str, str]
    X: torch.Tensor
    prior: PriorData | None = None
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {pid: i for i, pid in enumerate(self.ids)}

    @property
    def n_prior(self) -> int:
        return len(self.prior) if self.prior is not None else 0

    def open_rows(self, submitted: set[str]) -> list[int]:
        """Rows never submitted (failed polymers included: they are not retried) nor known from prior data."""
        taken = submitted | (self.prior.known if self.prior is not None else set())
        return [i for i, pid in enumerate(self.ids) if pid not in taken]

    def training_data(self, results: Iterable[tuple[str, dict[str, float]]], objectives: list[str],
                      maximize: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X_train, Y_train)`` of finished pool polymers ``(id, objective values)`` plus the prior data."""
        rows, ys = [], []
        for pid, values in results:
            if pid in self.index and all(math.isfinite(values.get(n, math.nan)) for n in objectives):
                rows.append(self.index[pid])
                ys.append([values[n] for n in objectives])
        Y = torch.tensor(ys, dtype=DTYPE).reshape(-1, len(objectives))
        X_train, Y_train = self.X[rows], to_max_form(Y, maximize)
        if self.prior is not None and len(self.prior):
            X_train, Y_train = torch.cat([self.prior.X, X_train]), torch.cat([self.prior.Y, Y_train])
        return X_train, Y_train


@dataclass
class PreparedPool:
    candidates: Candidates
    entries: list[tuple[str, int, str, str, str | None]]  # id, file row, smiles, canonical, name
    problems: list[tuple[int, str, str, str]]  # file row, id, stage, problem


def prepare_pool(campaign: Campaign, cache_path: Path, write_cache: bool = True) -> PreparedPool:
    """Load and validate the pool, compute (or read) its descriptors, and read the prior data."""
    pool = load_pool(campaign.pool)
    problems = [(p.row, p.id, "validation", p.problem) for p in pool.problems]
    for p in pool.problems:
        log.warning(f"pool {pool.path.name}: {p}; skipped")
    df = pool.entries
    with progress(len(df), "descriptors") as advance:
        feats = featurize(df["canonical"].tolist(), cache_path=cache_path, workers=campaign.descriptors.workers,
                          timeout_s=campaign.descriptors.timeout_s, advance=advance, write_cache=write_cache)
    rows = pool.rows  # each entry's 1-based row in the file (rows skipped above included)
    for i, reason in sorted(feats.failures.items()):
        problems.append((rows[i], df["id"].iloc[i], "descriptor", reason))
        log.warning(f"pool {pool.path.name}: id {df['id'].iloc[i]}: descriptor failed ({reason}); skipped")
    ok = np.array([i not in feats.failures for i in range(len(df))], dtype=bool)
    names = df["name"] if "name" in df.columns else pd.Series([None] * len(df))
    entries = [(pid, r, smi, can, (nm or None))
               for pid, r, smi, can, nm in zip(df["id"], rows, df["smiles"], df["canonical"], names)]
    candidates = Candidates(df["id"][ok].tolist(), dict(zip(df["id"][ok], df["smiles"][ok])),
                            torch.as_tensor(feats.X[ok], dtype=DTYPE))
    log.info(f"pool: {len(candidates.ids)} usable polymers ({feats.cached} descriptors cached, "
        f"{feats.computed} computed in {feats.seconds:.1f} s, {len(problems)} skipped)")
    if campaign.initial_data:
        candidates.prior = load_prior(campaign, candidates, df["canonical"][ok].tolist(), cache_path, write_cache)
    return PreparedPool(candidates, entries, problems)


def read_prior_results(paths: list[Path], objectives: list[str]) -> pd.DataFrame:
    """Rows ``canonical, <objectives>`` of the finished polymers in exports (one per polymer, first wins)."""
    frames = []
    for path in paths:
        df = read_table(Path(path), keep_text=False, what="initial data")
        missing = [c for c in ("smiles", *objectives) if c not in df.columns]
        if missing:
            raise ConfigError(f"initial data {path} lacks column(s) {', '.join(missing)} (an export of a campaign "
                              f"with objectives {', '.join(objectives)} has them)")
        if "status" in df.columns:
            df = df[df["status"] == JobState.DONE]
        vals = df[objectives].apply(pd.to_numeric, errors="coerce")
        ok = np.isfinite(vals.to_numpy(dtype=float)).all(axis=1)
        canon = [canonical_psmiles(s) if isinstance(s, str) else None for s in df["smiles"]]
        part = pd.DataFrame({"canonical": canon, **{n: vals[n] for n in objectives}})[ok]
        frames.append(part[part["canonical"].notna()])
    if not frames:
        return pd.DataFrame(columns=["canonical", *objectives])
    return pd.concat(frames, ignore_index=True).drop_duplicates("canonical")


def load_prior(campaign: Campaign, candidates: Candidates, canonical: list[str], cache_path: Path,
               write_cache: bool) -> PriorData:
    """The prior data: pool polymers take their pool row's descriptor, the others are featurized."""
    names = list(campaign.objectives)
    prior = read_prior_results(campaign.initial_data, names)
    row_of = {can: i for i, can in enumerate(canonical)}  # canonical PSMILES -> row of X
    rows = prior["canonical"].map(row_of)
    inside = rows.notna().to_numpy()
    outside = prior.loc[~inside, "canonical"].tolist()  # not in this pool: featurized for training only
    feats = featurize(outside, cache_path=cache_path, workers=campaign.descriptors.workers,
                      timeout_s=campaign.descriptors.timeout_s, write_cache=write_cache)
    usable = np.array([i not in feats.failures for i in range(len(outside))], dtype=bool)
    X = candidates.X
    Y = prior[names].to_numpy(dtype=float)
    X_prior = torch.cat([X[rows[inside].astype(int).tolist()],
                         torch.as_tensor(feats.X[usable], dtype=DTYPE).reshape(-1, X.shape[1])])
    Y_prior = torch.as_tensor(np.concatenate([Y[inside], Y[~inside][usable]]), dtype=DTYPE)
    known = {candidates.ids[int(r)] for r in rows[inside]}
    log.info(f"initial data: {X_prior.shape[0]} finished polymer(s) from {len(campaign.initial_data)} file(s) "
        f"({len(known)} in this pool, not run again; {int(usable.sum())} outside it, used for training)")
    return PriorData(X_prior, to_max_form(Y_prior.reshape(-1, len(names)), campaign.maximize), known)


def stored_results(rows: Iterable) -> Iterable[tuple[str, dict[str, float]]]:
    """``(polymer id, objective values)`` of the store's result rows."""
    for r in rows:
        yield r["polymer_id"], json.loads(r["objectives"])
