"""CSV and Parquet tables a user names (pools, oracle tables, exports, monomer lists)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES  # pandas' own missing-value strings

from workflow.common.errors import ConfigError


class TableError(ConfigError):
    """A table file that cannot be read at all (missing, wrong format, missing columns); one line."""


def read_table(path: Path, keep_text: bool = True, what: str = "pool",
               id_columns: tuple[str, ...] = ("id",)) -> pd.DataFrame:
    """A CSV or Parquet table; ``keep_text`` keeps empty cells as '' (pool ids), else they read as NaN. The
    ``id_columns`` of a CSV are read verbatim as text either way: an id ``NA``, ``nan`` or ``None`` is that id,
    not a missing value."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{what} file {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        columns = pd.read_csv(path, nrows=0).columns
        ids = {c: str for c in id_columns if c in columns}
        na = {} if keep_text else {c: sorted(STR_NA_VALUES) for c in columns if c not in ids}
        return pd.read_csv(path, dtype=ids, keep_default_na=False, na_values=na)
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(f"{what} file {path} cannot be read: {why}") from None


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
