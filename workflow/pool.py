"""Virtual pools: CSV or Parquet tables of repeat units with ``id`` and ``smiles`` columns.

Bad rows are reported with their row number and id and skipped; the campaign goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

GAFF2_MOD_ELEMENTS = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
"""Elements GAFF2_mod has types for (RadonPy's descriptor covers the same ten)."""


class PoolError(ValueError):
    """A pool file that cannot be read at all (missing, wrong format, missing columns)."""


@dataclass(frozen=True)
class PoolProblem:
    row: int  # 1-based data row (header excluded), as a spreadsheet user counts
    id: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row} (id {self.id}): {self.problem}"


@dataclass
class Pool:
    path: Path
    entries: pd.DataFrame  # valid rows: id, smiles, canonical, plus any extra columns
    problems: list[PoolProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)


def canonical_psmiles(psmiles: str) -> str | None:
    mol = Chem.MolFromSmiles(psmiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def check_psmiles(psmiles: str) -> str | None:
    """None for a usable repeat unit, else a one-line description of the problem."""
    if not isinstance(psmiles, str) or not psmiles.strip():
        return "empty PSMILES"
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(psmiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        return f"RDKit cannot parse PSMILES {psmiles!r}"
    links = sum(1 for a in mol.GetAtoms() if a.GetAtomicNum() == 0)
    if links != 2:
        return f"PSMILES {psmiles!r} has {links} '*' links; a repeat unit needs exactly 2"
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0 and atom.GetDegree() != 1:
            return f"a '*' link in {psmiles!r} must bond to exactly one atom"
    unsupported = sorted({a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() > 0} - GAFF2_MOD_ELEMENTS)
    if unsupported:
        return f"element(s) {', '.join(unsupported)} in {psmiles!r} have no GAFF2_mod type"
    return None


def read_table(path: Path, keep_text: bool = True) -> pd.DataFrame:
    """A CSV or Parquet table; ``keep_text`` keeps empty cells as '' (pool ids), else they read as NaN."""
    if not path.is_file():
        raise PoolError(f"pool file {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"id": str}, keep_default_na=not keep_text)
    except Exception as exc:
        raise PoolError(f"pool file {path} cannot be read: {exc}") from None


def load_pool(path: str | Path) -> Pool:
    """Read and validate a pool; invalid rows go to ``Pool.problems``."""
    path = Path(path)
    df = read_table(path)
    missing = [c for c in ("id", "smiles") if c not in df.columns]
    if missing:
        raise PoolError(f"pool file {path} lacks column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    df = df.copy()
    df["id"] = df["id"].astype(str)
    problems: list[PoolProblem] = []
    keep: list[int] = []
    canon: list[str] = []
    seen_ids: dict[str, int] = {}
    seen_smiles: dict[str, int] = {}
    for i, (pid, smi) in enumerate(zip(df["id"], df["smiles"]), start=1):
        if not pid.strip():
            problems.append(PoolProblem(i, "''", "empty id"))
            continue
        if pid in seen_ids:
            problems.append(PoolProblem(i, pid, f"duplicate id (first on row {seen_ids[pid]})"))
            continue
        seen_ids[pid] = i
        problem = check_psmiles(smi)
        if problem is not None:
            problems.append(PoolProblem(i, pid, problem))
            continue
        c = canonical_psmiles(smi)
        if c in seen_smiles:
            problems.append(PoolProblem(i, pid, f"duplicate of row {seen_smiles[c]}"))
            continue
        seen_smiles[c] = i
        keep.append(i - 1)
        canon.append(c)
    entries = df.iloc[keep].reset_index(drop=True)
    entries["canonical"] = canon
    return Pool(path=path, entries=entries, problems=problems)
