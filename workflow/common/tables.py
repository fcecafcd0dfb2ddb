"""CSV and Parquet tables a user names (pools, oracle tables, exports, monomer lists)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workflow.common.errors import ConfigError


class TableError(ConfigError):
    """A table file that cannot be read at all (missing, wrong format, missing columns); one line."""


def read_table(path: Path, keep_text: bool = True, what: str = "pool") -> pd.DataFrame:
    """A CSV or Parquet table; ``keep_text`` keeps empty cells as '' (pool ids), else they read as NaN."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{what} file {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"id": str}, keep_default_na=not keep_text)
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(f"{what} file {path} cannot be read: {why}") from None


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
