"""Virtual pools: CSV or Parquet tables of repeat units with ``id`` and ``smiles`` columns.

Bad rows are reported with their row number and id and skipped; the campaign goes on.

Two levels of identity: :func:`load_pool` (run at every campaign start, cheap at 10^6 rows) merges
entries whose PSMILES are the same molecule graph; :func:`validate_pool` also merges repeat units
that describe the same chain from a different starting atom (``*CC(*)C(=O)OC`` vs ``*C(C(=O)OC)C*``
for an alternating copolymer shifted by one monomer) by comparing cyclic trimers.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workflow.common.chem import (
    canonical_psmiles,
    classify_psmiles,
    polymer_key,
    unit_atoms,
)
from workflow.common.errors import shorten
from workflow.common.progress import progress
from workflow.common.tables import TableError, read_table

PoolError = TableError  # a pool or monomer file that cannot be read at all (missing, wrong format, missing columns)


@dataclass(frozen=True)
class PoolProblem:
    row: int  # 1-based data row (header excluded), as a spreadsheet user counts
    id: str
    problem: str
    kind: str = "invalid"  # empty_id, duplicate_id, unparsable, links, element, duplicate, too_large, untypable

    def __str__(self) -> str:
        return f"row {self.row} (id {shorten(self.id)}): {shorten(self.problem, 200)}"


@dataclass
class Pool:
    path: Path
    entries: pd.DataFrame  # valid rows: id, smiles, canonical, plus any extra columns
    problems: list[PoolProblem] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # the file row of each entry (1-based)

    def __len__(self) -> int:
        return len(self.entries)


@functools.cache
def _gaff2_mod():
    from radonpy.core import const
    from radonpy.ff.gaff2_mod import GAFF2_mod

    const.print_level = 0
    return GAFF2_mod()


def gaff2_mod_problem(psmiles: str) -> str | None:
    """None when RadonPy's GAFF2_mod types every atom, bond, angle and dihedral of the cyclic trimer.

    The trimer is the descriptor's (:func:`surrogate.descriptor.cyclic_oligomer`: kekulized before the
    ring closes; a re-aromatized macrocycle takes seconds to type), so a unit typed here is one the
    descriptor can compute.
    """
    from surrogate.descriptor import cyclic_oligomer

    mol = cyclic_oligomer(psmiles, 3)
    if mol is None:
        return "RadonPy cannot build its cyclic trimer"
    with contextlib.redirect_stdout(io.StringIO()) as said:
        ok = _gaff2_mod().ff_assign(mol, charge=None)
    if ok:
        return None
    why = [ln.replace("RadonPy warning: ", "") for ln in said.getvalue().splitlines() if "warning" in ln]
    return "GAFF2_mod cannot type it" + (f" ({why[0].strip()})" if why else "")


def _text(value):
    """A PSMILES cell: a Parquet binary column's UTF-8 bytes are its text; anything else is left for the check."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def load_pool(path: str | Path) -> Pool:
    """Read and validate a pool; invalid rows go to ``Pool.problems``."""
    path = Path(path)
    df = read_table(path, what="pool")
    missing = [c for c in ("id", "smiles") if c not in df.columns]
    if missing:
        raise PoolError(f"pool file {path} lacks column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    df = df.copy()
    df["id"] = ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in df["id"]]  # null: empty
    df["smiles"] = [_text(v) for v in df["smiles"]]
    problems: list[PoolProblem] = []
    keep: list[int] = []
    canon: list[str] = []
    seen_ids: dict[str, int] = {}
    seen_smiles: dict[str, int] = {}
    for i, (pid, smi) in enumerate(zip(df["id"], df["smiles"]), start=1):
        if not pid.strip():
            problems.append(PoolProblem(i, "''", "empty id", "empty_id"))
            continue
        if pid in seen_ids:
            problems.append(PoolProblem(i, pid, f"duplicate id (first on row {seen_ids[pid]})", "duplicate_id"))
            continue
        seen_ids[pid] = i
        found = classify_psmiles(smi)
        if found is not None:
            problems.append(PoolProblem(i, pid, found[1], found[0]))
            continue
        c = canonical_psmiles(smi)
        if c in seen_smiles:
            problems.append(PoolProblem(i, pid, f"duplicate of row {seen_smiles[c]}", "duplicate"))
            continue
        seen_smiles[c] = i
        keep.append(i - 1)
        canon.append(c)
    entries = df.iloc[keep].reset_index(drop=True)
    entries["canonical"] = canon
    return Pool(path=path, entries=entries, problems=problems, rows=[i + 1 for i in keep])


PROVENANCE_KEY = b"polyscout.provenance"


def provenance_path(path: Path) -> Path:
    """Where a CSV pool's provenance lives (Parquet pools carry it in the file's metadata)."""
    return path.with_name(path.name + ".provenance.json")


def read_provenance(path: str | Path) -> dict | None:
    """How a pool was made, as ``workflow pool generate`` recorded it, or None."""
    import json

    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else None
    side = provenance_path(path)
    return json.loads(side.read_text()) if side.is_file() else None


@dataclass
class PoolReport:
    path: Path
    n_rows: int
    n_valid: int
    problems: list[PoolProblem]
    provenance: dict | None

    def counts(self) -> dict[str, int]:
        from collections import Counter

        return dict(Counter(p.kind for p in self.problems))


def _validate_row(row: int, pid: str, smi: str, seen: dict[str, int], problems: list[PoolProblem],
                  max_unit_atoms: int | None, check_typing: bool) -> int:
    """Check one usable row of a pool (appending its problem); 1 when it is valid."""
    key = polymer_key(smi)
    if key in seen:
        problems.append(PoolProblem(row, pid, f"duplicate of row {seen[key]} (the same chain, written from "
                                              f"another starting atom)", "duplicate"))
        return 0
    seen[key] = row
    if max_unit_atoms is not None:
        n = unit_atoms(smi)
        if n > max_unit_atoms:
            problems.append(PoolProblem(row, pid, f"repeat unit has {n} atoms, more than {max_unit_atoms}",
                                        "too_large"))
            return 0
    if check_typing:
        why = gaff2_mod_problem(smi)
        if why is not None:
            problems.append(PoolProblem(row, pid, why, "untypable"))
            return 0
    return 1


def validate_pool(path: str | Path, max_unit_atoms: int | None = None, check_typing: bool = False) -> PoolReport:
    """Every problem of a pool file, by row: what :func:`load_pool` finds, plus the same chain written from
    another starting atom (``duplicate``), repeat units over ``max_unit_atoms`` (``too_large``), and, with
    ``check_typing``, units GAFF2_mod cannot type (``untypable``; about 5 ms a row)."""
    pool = load_pool(path)
    problems = list(pool.problems)
    seen: dict[str, int] = {}
    valid = 0
    with progress(len(pool.entries), "validating") as advance:
        for row, pid, smi in zip(pool.rows, pool.entries["id"], pool.entries["smiles"]):
            advance(1)
            valid += _validate_row(row, pid, smi, seen, problems, max_unit_atoms, check_typing)
    problems.sort(key=lambda p: p.row)
    n_rows = len(pool.entries) + len(pool.problems)
    return PoolReport(Path(path), n_rows, valid, problems, read_provenance(path))
