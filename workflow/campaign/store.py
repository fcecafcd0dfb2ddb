"""The campaign store: one SQLite database (WAL) under ``runs/<campaign>/``.

Only the driver writes; ``workflow status`` and ``workflow pareto`` read it while a campaign runs.

The ``results`` table has one column per objective property of the job's record
(:data:`workflow.job.record.OBJECTIVE_PROPERTIES`, added to older stores when opened), beside the
campaign's own objectives and the whole record as JSON.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from workflow.job.record import OBJECTIVE_PROPERTIES

JOB_STATES = ("submitted", "done", "failed")
TERMINAL_STATES = ("done", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pool (
    polymer_id TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    smiles TEXT NOT NULL,
    canonical TEXT NOT NULL,
    name TEXT
);
CREATE TABLE IF NOT EXISTS pool_problems (
    row INTEGER NOT NULL,
    polymer_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    problem TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    polymer_id TEXT NOT NULL REFERENCES pool(polymer_id),
    cycle INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('submitted', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 1,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    failure_kind TEXT,
    failure_stage TEXT,
    failure_message TEXT,
    job_dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_polymer ON jobs(polymer_id);
CREATE TABLE IF NOT EXISTS results (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(job_id),
    polymer_id TEXT NOT NULL REFERENCES pool(polymer_id),
    {property_columns}
    objectives TEXT NOT NULL,
    properties TEXT NOT NULL,
    preset TEXT NOT NULL,
    protocol TEXT NOT NULL,
    versions TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cycles (
    cycle INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    polymer_id TEXT NOT NULL REFERENCES pool(polymer_id),
    strategy TEXT NOT NULL,
    acquisition REAL,
    predicted_mean TEXT,
    predicted_std TEXT,
    n_training INTEGER NOT NULL,
    selected_at REAL NOT NULL,
    PRIMARY KEY (cycle, rank)
);
"""


class Store:
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no campaign store at {self.path}")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA.format(property_columns="".join(f"{p} REAL,\n    "
                                                                         for p in OBJECTIVE_PROPERTIES)))
            self._add_property_columns()
        self.db.row_factory = sqlite3.Row

    def _add_property_columns(self) -> None:
        """Columns for objective properties the record gained after this store was made."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(results)")}
        with self.db:
            for name in OBJECTIVE_PROPERTIES:
                if name not in have:
                    self.db.execute(f"ALTER TABLE results ADD COLUMN {name} REAL")

    def close(self) -> None:
        self.db.close()

    # --- meta -------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    # --- pool -------------------------------------------------------------------------------
    def save_pool(self, entries: Iterable[tuple[str, int, str, str, str | None]],
                  problems: Iterable[tuple[int, str, str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO pool VALUES (?, ?, ?, ?, ?)", entries)
            self.db.execute("DELETE FROM pool_problems")
            self.db.executemany("INSERT INTO pool_problems VALUES (?, ?, ?, ?)", problems)

    def pool_problems(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM pool_problems ORDER BY row").fetchall()

    # --- jobs -------------------------------------------------------------------------------
    def job(self, job_id: int) -> sqlite3.Row:
        return self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()

    def finish_job(self, job_id: int, polymer_id: str, record: dict[str, Any], objectives: dict[str, float]) -> None:
        """Mark a job done and store its result, in one transaction."""
        now = time.time()
        started = record.get("started_at")
        with self.db:
            self.db.execute("UPDATE jobs SET state = 'done', started_at = ?, ended_at = ? WHERE job_id = ?",
                            (started, now, job_id))
            row = {"job_id": job_id, "polymer_id": polymer_id,
                   **{p: _number(record.get(p)) for p in OBJECTIVE_PROPERTIES},
                   "objectives": json.dumps(objectives), "properties": json.dumps(record, default=str),
                   "preset": str(record.get("preset", "oracle")), "protocol": json.dumps(record.get("protocol", {})),
                   "versions": json.dumps(record.get("versions", {})), "recorded_at": now}
            self.db.execute(f"INSERT INTO results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))

    def retry_job(self, job_id: int, kind: str, message: str) -> int:
        """Count another attempt of a job (same directory: it resumes); returns the attempt number."""
        with self.db:
            self.db.execute("UPDATE jobs SET attempts = attempts + 1, failure_kind = ?, failure_message = ? "
                            "WHERE job_id = ?", (kind, f"retried after: {message}", job_id))
        return int(self.job(job_id)["attempts"])

    def fail_job(self, job_id: int, kind: str, stage: str, message: str) -> None:
        with self.db:
            self.db.execute("UPDATE jobs SET state = 'failed', ended_at = ?, failure_kind = ?, failure_stage = ?, "
                            "failure_message = ? WHERE job_id = ?", (time.time(), kind, stage, message, job_id))

    def jobs(self, state: str | None = None) -> list[sqlite3.Row]:
        if state is None:
            return self.db.execute("SELECT * FROM jobs ORDER BY job_id").fetchall()
        return self.db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY job_id", (state,)).fetchall()

    def submitted_polymers(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT polymer_id FROM jobs")}

    def results(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT r.*, j.cycle, p.smiles, p.name FROM results r JOIN jobs j USING (job_id) "
            "JOIN pool p ON p.polymer_id = r.polymer_id ORDER BY r.job_id").fetchall()

    # --- cycles -----------------------------------------------------------------------------
    def record_selection(self, cycle: int, polymer_ids: list[str], strategy: str, acquisition: list[float | None],
                         mean: list[list[float]] | None, std: list[list[float]] | None, n_training: int,
                         job_dir_for: Callable[[int, str], str] | None = None) -> list[int]:
        """Record a cycle's picks and, with ``job_dir_for``, their submitted jobs: one transaction.

        A driver killed mid-way leaves either the whole cycle (picks and jobs) or none of it.
        Returns the new job ids in pick order.
        """
        now = time.time()
        rows = [(cycle, rank, pid, strategy, acquisition[rank],
                 json.dumps(mean[rank]) if mean is not None else None,
                 json.dumps(std[rank]) if std is not None else None, n_training, now)
                for rank, pid in enumerate(polymer_ids)]
        job_ids: list[int] = []
        with self.db:
            self.db.executemany("INSERT INTO cycles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if job_dir_for is not None:
                for pid in polymer_ids:
                    cur = self.db.execute("INSERT INTO jobs (polymer_id, cycle, state, submitted_at, job_dir) "
                                          "VALUES (?, ?, 'submitted', ?, '')", (pid, cycle, now))
                    job_id = int(cur.lastrowid)
                    self.db.execute("UPDATE jobs SET job_dir = ? WHERE job_id = ?", (job_dir_for(job_id, pid), job_id))
                    job_ids.append(job_id)
        return job_ids

    def cycles(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM cycles ORDER BY cycle, rank").fetchall()

    def last_cycle(self) -> int | None:
        row = self.db.execute("SELECT MAX(cycle) FROM cycles").fetchone()
        return row[0]


def _number(v: Any) -> float | None:
    """A record's property as a column value: a finite number or NULL."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None
