"""Shared by the PI1070 benchmarks: where the table is and how it becomes a PolyScout pool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "PI1070.csv"
ID_COLUMN = "monomer_ID"


def data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the PI1070 table (default {DEFAULT_DATA})")


def load_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        sys.exit(f"PI1070 table not found at {path}: it ships in the developers' ../shared/data "
                 f"(not in the repository); pass --data PATH")
    return pd.read_csv(path)


def write_pool(table: pd.DataFrame, out: Path) -> Path:
    """A pool file (``id``, ``smiles``) of every row of the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table[[ID_COLUMN, "smiles"]].rename(columns={ID_COLUMN: "id"}).to_csv(out, index=False)
    return out
