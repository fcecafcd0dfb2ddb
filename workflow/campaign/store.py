"""The campaign store: one SQLite database under ``runs/<campaign>/``.

Only the driver writes; ``workflow status`` and ``workflow pareto`` read it while a campaign runs.
On a local filesystem the store uses SQLite's write-ahead log (readers never block the driver).
WAL needs shared memory between the processes, which network filesystems (NFS, Lustre, GPFS,
BeeGFS, CIFS) do not provide safely across hosts: there the store uses a rollback journal
(detected from ``/proc/mounts``; a campaign's ``store: {journal: wal|delete}`` overrides). Either
way, run the driver on one host; status and pareto may read from any. A read-only campaign
(archived, or in a read-only directory) is read from a private copy of its database and log.

The ``results`` table has one column per objective property of the job's record
(:data:`workflow.job.record.OBJECTIVE_PROPERTIES`, added to older stores when opened), beside the
campaign's own objectives and the whole record as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pydantic import ValidationError

from workflow.common.errors import ConfigError, one_line, shorten
from workflow.job.failures import FailureKind
from workflow.job.record import OBJECTIVE_PROPERTIES

if TYPE_CHECKING:
    from workflow.campaign.config import Campaign

STORE_FORMAT = 2  # 2: absolute job directories, result columns from the record's objective properties



class JobState(StrEnum):
    """A stored job's state (the one list: the ``jobs`` table's CHECK is written from it)."""

    SUBMITTED = "submitted"  # picked and handed to the evaluator; running, queued, or to be resubmitted
    DONE = "done"            # its result is in ``results``
    FAILED = "failed"        # its last attempt failed; ``failure_kind`` says why
    RETURNED = "returned"    # failed, then given back to the pool (kept as history; the polymer may run again)


class JobKind(StrEnum):
    """What a stored job computes (a ``qm-first`` campaign uses all three; the others only ``job``)."""

    JOB = "job"  # the property job: both stages
    QM = "qm"    # the QM stage alone: a screen, its result in ``screens``
    MD = "md"    # the rest of the property job after the polymer's screen, in the screen's directory


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


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
    state TEXT NOT NULL CHECK (state IN ({job_states})),
    attempts INTEGER NOT NULL DEFAULT 1,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    failure_kind TEXT,
    failure_stage TEXT,
    failure_message TEXT,
    job_dir TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'job' CHECK (kind IN ({job_kinds}))
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
CREATE TABLE IF NOT EXISTS screens (
    polymer_id TEXT PRIMARY KEY REFERENCES pool(polymer_id),
    job_id INTEGER NOT NULL REFERENCES jobs(job_id),
    polarizability_d REAL NOT NULL,
    mol_weight REAL NOT NULL,
    qm TEXT NOT NULL,
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


RETRY_LABEL = "retry (workflow retry)"
"""The strategy recorded for a cycle of polymers given back by ``workflow retry``: it spends no cycle."""


class StoreError(ConfigError):
    """A campaign store that cannot be used (empty, truncated, not PolyScout's, unreadable); one line."""


NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "beegfs", "ceph", "fuse.sshfs",
                                 "panfs", "wekafs"})
"""Where SQLite's WAL (shared memory between processes) is unsafe: the store uses a rollback journal there."""


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (``/proc/mounts``; "unknown" where that cannot be read)."""
    try:
        mounts = [ln.split() for ln in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    target, best = str(Path(path).resolve()), ("", "unknown")
    for parts in mounts:
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
            if len(parts[1]) >= len(best[0]):
                best = (parts[1], parts[2])
    return best[1]


def journal_mode(path: Path, setting: str = "auto") -> str:
    """``wal`` on a local filesystem, ``delete`` (a rollback journal) on a network one, unless set."""
    if setting != "auto":
        return setting
    return "delete" if filesystem_type(path.parent) in NETWORK_FILESYSTEMS else "wal"


def _check_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database (an empty or truncated store is not a new campaign)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise StoreError(f"campaign store {path} cannot be read ({exc.strerror})") from None
    if head != b"SQLite format 3\x00":
        what = "is empty" if not head else "is not a SQLite database"
        raise StoreError(f"campaign store {path} {what} (truncated or overwritten?): restore it from a backup, "
                         f"or move it away to start the campaign afresh") from None


class Store:
    """The campaign store. ``readonly`` opens it for reading only, also where its directory is read-only
    (an archived campaign: the database and its write-ahead log are read from a private copy)."""

    def __init__(self, path: str | Path, readonly: bool = False, journal: str = "auto"):
        self.path = Path(path)
        self.readonly = readonly
        self.closed = False
        self._copy: Path | None = None
        try:
            self.db = self._open_readonly() if readonly else self._open_writable(journal)
            self._check_schema(readonly)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"campaign store {self.path} cannot be used: {exc}") from None
        self.db.row_factory = sqlite3.Row

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise FileNotFoundError(f"no campaign store at {self.path}")
        _check_file(self.path)
        if os.access(self.path.parent, os.W_OK):
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        # a read-only directory: SQLite cannot create the -shm file WAL readers need; read a copy instead
        self._copy = Path(tempfile.mkdtemp(prefix="polyscout-store-"))
        for suffix in ("", "-wal"):
            if Path(f"{self.path}{suffix}").is_file():
                shutil.copyfile(f"{self.path}{suffix}", self._copy / f"campaign.sqlite{suffix}")
        return sqlite3.connect(f"file:{self._copy / 'campaign.sqlite'}?mode=ro", uri=True, timeout=30)

    def _open_writable(self, journal: str) -> sqlite3.Connection:
        if not self.path.exists():
            self._create()
        _check_file(self.path)
        db = sqlite3.connect(self.path, timeout=30)
        self.db = db
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)  # the file this connection writes (see check_in_place)
        self._check_tables()  # before anything changes the file
        db.execute(f"PRAGMA journal_mode={journal_mode(self.path, journal)}")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def check_in_place(self) -> None:
        """Stop when the store file was deleted or replaced under this writer (what it writes would reach no one):
        what the connection still holds is copied to the store's path (or, where another file took it, beside
        it) and a :class:`StoreError` says where."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            why, rescue = "deleted", self.path
        else:
            if (st.st_dev, st.st_ino) == self._identity:
                return
            why, rescue = "replaced", self.path.with_name(f"{self.path.name}.kept-{int(time.time())}")
        rescue.parent.mkdir(parents=True, exist_ok=True)
        out = sqlite3.connect(rescue)
        try:
            self.db.backup(out)
        finally:
            out.close()
        raise StoreError(f"campaign store {self.path} was {why} while the campaign ran: what it held is saved to "
                         f"{rescue}; this run stops (jobs still running resume with the next run)")

    def _create(self) -> None:
        """A new store, made beside its place and renamed into it: an empty or half-made store file is never
        seen, even by a reader at that moment or after a driver killed then."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.new{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            db = sqlite3.connect(tmp)
            try:
                db.executescript(SCHEMA.format(property_columns="".join(f"{p} REAL,\n    "
                                                                        for p in OBJECTIVE_PROPERTIES),
                                               job_states=_sql_list(JobState), job_kinds=_sql_list(JobKind)))
                with db:
                    db.execute("INSERT INTO meta VALUES ('store_format', ?)", (json.dumps(STORE_FORMAT),))
            finally:
                db.close()
            os.replace(tmp, self.path)
        finally:  # a full disk: nothing is left beside the store
            tmp.unlink(missing_ok=True)

    def _check_tables(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "pool", "jobs", "results", "cycles"} <= tables:
            raise StoreError(f"{self.path} is not a PolyScout campaign store "
                             f"(tables: {', '.join(sorted(tables)) or 'none'})")

    def _check_schema(self, readonly: bool) -> None:
        self._check_tables()
        if not readonly:
            self._job_states()
            self._add_property_columns()
            self._add_screens()
            self._job_dirs_here()

    def _job_states(self) -> None:
        """A store whose ``jobs`` CHECK predates a :class:`JobState` (``returned``): the table is rebuilt with today's
        CHECK, every row kept (SQLite's documented way to change a constraint)."""
        sql = self.db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()[0]
        if all(f"'{state}'" in sql for state in JobState):
            return
        table = SCHEMA.split("CREATE TABLE IF NOT EXISTS jobs (", 1)[1].split(");", 1)[0]
        columns = ", ".join(r[1] for r in self.db.execute("PRAGMA table_info(jobs)"))
        self.db.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.db:
                self.db.execute(f"CREATE TABLE jobs_new "
                                f"({table.format(job_states=_sql_list(JobState), job_kinds=_sql_list(JobKind))})")
                self.db.execute(f"INSERT INTO jobs_new ({columns}) SELECT {columns} FROM jobs")
                self.db.execute("DROP TABLE jobs")
                self.db.execute("ALTER TABLE jobs_new RENAME TO jobs")
                self.db.execute("CREATE INDEX IF NOT EXISTS jobs_polymer ON jobs(polymer_id)")
        finally:
            self.db.execute("PRAGMA foreign_keys=ON")

    def _job_dirs_here(self) -> None:
        """Job directories live in ``jobs/`` beside the store: a store written before they were absolute
        (``runs/NAME/jobs/X``), or one whose campaign folder was copied or moved, points at this one's."""
        jobs_dir = self.path.parent.resolve() / "jobs"
        rows = self.db.execute("SELECT job_id, job_dir FROM jobs").fetchall()
        fix = [(str(jobs_dir / Path(d).name), j) for j, d in rows if d and Path(d) != jobs_dir / Path(d).name]
        if fix:
            with self.db:
                self.db.executemany("UPDATE jobs SET job_dir = ? WHERE job_id = ?", fix)

    def _add_screens(self) -> None:
        """What a store made before qm-first campaigns lacks: the jobs' kind (every old job a whole ``job``) and the
        ``screens`` table."""
        if "kind" not in {r[1] for r in self.db.execute("PRAGMA table_info(jobs)")}:
            with self.db:
                self.db.execute(f"ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'job' "
                                f"CHECK (kind IN ({_sql_list(JobKind)}))")
        screens = SCHEMA.split("CREATE TABLE IF NOT EXISTS screens (", 1)[1].split(");", 1)[0]
        with self.db:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS screens ({screens})")

    def _add_property_columns(self) -> None:
        """Columns for objective properties the record gained after this store was made."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(results)")}
        with self.db:
            for name in OBJECTIVE_PROPERTIES:
                if name not in have:
                    self.db.execute(f"ALTER TABLE results ADD COLUMN {name} REAL")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._copy is None and not self.readonly:
            try:  # fold the write-ahead log into the database: an archived copy is one file
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        self.db.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)

    # --- meta -------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def campaign(self) -> Campaign:
        """The campaign this store holds, typed (as it started; its files are not looked at)."""
        from workflow.campaign.config import Campaign

        saved = self.get_meta("campaign")
        if saved is None:
            raise StoreError(f"campaign store {self.path} holds no campaign yet (its driver has not started one)")
        try:
            return Campaign.model_validate(saved)
        except ValidationError as exc:
            raise StoreError(f"campaign store {self.path}: its campaign settings cannot be read: {one_line(exc)}") from None

    # --- pool -------------------------------------------------------------------------------
    def save_pool(self, entries: list[tuple[str, int, str, str, str | None]],
                  problems: Iterable[tuple[int, str, str, str]]) -> None:
        """Record the pool's entries ``(id, row, smiles, canonical, name)``; an id the store knows with another
        polymer is refused (its results would be misfiled)."""
        known = {r[0]: r[1] for r in self.db.execute("SELECT polymer_id, canonical FROM pool")}
        for pid, row, smiles, canonical, _ in entries:
            if pid in known and known[pid] != canonical:
                raise StoreError(f"pool row {row} (id {shorten(pid)}): PSMILES {shorten(smiles)} differs from the "
                                 f"polymer this campaign knows as {shorten(pid)} ({shorten(known[pid])}); restore "
                                 f"the row or give the new polymer a new id")
        with self.db:
            # the file row follows the file (an older store recorded the row among kept rows)
            self.db.executemany("INSERT INTO pool VALUES (?, ?, ?, ?, ?) ON CONFLICT(polymer_id) DO UPDATE SET "
                                "row = excluded.row, smiles = excluded.smiles, name = excluded.name", entries)
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
            self.db.execute("UPDATE jobs SET state = ?, started_at = ?, ended_at = ? WHERE job_id = ?",
                            (JobState.DONE.value, started, now, job_id))
            row = {"job_id": job_id, "polymer_id": polymer_id,
                   **{p: _number(record.get(p)) for p in OBJECTIVE_PROPERTIES},
                   "objectives": json.dumps(objectives), "properties": json.dumps(record, default=str),
                   "preset": str(record.get("preset", "oracle")), "protocol": json.dumps(record.get("protocol", {})),
                   "versions": json.dumps(record.get("versions", {})), "recorded_at": now}
            self.db.execute(f"INSERT INTO results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))

    def finish_screen(self, job_id: int, polymer_id: str, qm: dict[str, Any], polarizability_d: float,
                      mol_weight: float, job_done: bool = True) -> None:
        """Store a polymer's QM result (its screen), and mark its QM job done, in one transaction. A whole job's or
        an MD job's record brings the same values (``job_done`` False: the job is finished by :meth:`finish_job`)."""
        now = time.time()
        with self.db:
            if job_done:
                self.db.execute("UPDATE jobs SET state = ?, started_at = ?, ended_at = ? WHERE job_id = ?",
                                (JobState.DONE.value, qm.get("started_at"), now, job_id))
            self.db.execute("INSERT OR IGNORE INTO screens VALUES (?, ?, ?, ?, ?, ?)",
                            (polymer_id, job_id, float(polarizability_d), float(mol_weight),
                             json.dumps(qm, default=str), now))

    def screens(self) -> list[sqlite3.Row]:
        """Every stored QM result (a screen, or the QM of a whole job), with the directory of its job."""
        if not self._has_table("screens"):
            return []  # a store read-only and older than qm-first campaigns
        return self.db.execute("SELECT s.*, j.job_dir FROM screens s JOIN jobs j USING (job_id) "
                               "ORDER BY s.job_id").fetchall()

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)).fetchone() is not None

    def retry_job(self, job_id: int, kind: FailureKind, message: str) -> int:
        """Count another attempt of a job (same directory: it resumes); returns the attempt number."""
        with self.db:
            self.db.execute("UPDATE jobs SET attempts = attempts + 1, failure_kind = ?, failure_message = ? "
                            "WHERE job_id = ?", (FailureKind(kind).value, f"retried after: {message}", job_id))
        return int(self.job(job_id)["attempts"])

    def fail_job(self, job_id: int, kind: FailureKind, stage: str, message: str) -> None:
        kind = FailureKind(kind)
        with self.db:
            self.db.execute("UPDATE jobs SET state = ?, ended_at = ?, failure_kind = ?, failure_stage = ?, "
                            "failure_message = ? WHERE job_id = ?",
                            (JobState.FAILED.value, time.time(), kind.value, stage, message, job_id))

    def jobs(self, state: JobState | None = None) -> list[sqlite3.Row]:
        if state is None:
            return self.db.execute("SELECT * FROM jobs ORDER BY job_id").fetchall()
        return self.db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY job_id", (state,)).fetchall()

    def submitted_polymers(self, kinds: tuple[JobKind, ...] = tuple(JobKind)) -> set[str]:
        """Polymers with a job (of these ``kinds``) that was not given back to the pool."""
        if set(kinds) != set(JobKind) and not self._has_kind():
            kinds = tuple(JobKind)  # a read-only store older than job kinds: every job was a whole one
        if set(kinds) == set(JobKind):
            return {r[0] for r in self.db.execute("SELECT DISTINCT polymer_id FROM jobs WHERE state != ?",
                                                   (JobState.RETURNED.value,))}
        return {r[0] for r in self.db.execute(
            f"SELECT DISTINCT polymer_id FROM jobs WHERE state != ? AND kind IN ({_sql_list(kinds)})",
            (JobState.RETURNED.value,))}

    def _has_kind(self) -> bool:
        return "kind" in {r[1] for r in self.db.execute("PRAGMA table_info(jobs)")}

    def return_jobs(self, job_ids: Iterable[int], why: str) -> None:
        """Give failed jobs' polymers back to the pool: the jobs stay, as history, in state ``returned``."""
        with self.db:
            self._return(job_ids, f"returned to the pool {time.strftime('%Y-%m-%d %H:%M')}: {why}")

    def _return(self, job_ids: Iterable[int], note: str) -> int:
        """Failed jobs to ``returned``, ``note`` appended to their message, inside the caller's transaction; how many
        changed (a job not failed is left as it is)."""
        cur = self.db.executemany("UPDATE jobs SET state = ?, failure_message = COALESCE(failure_message, '') || ? "
                                  "WHERE job_id = ? AND state = ?",
                                  ((JobState.RETURNED.value, f" [{note}]", j, JobState.FAILED.value) for j in job_ids))
        return cur.rowcount

    def resubmit(self, job_ids: list[int]) -> tuple[int, list[int]]:
        """Give failed jobs back and run their polymers again (``workflow retry``), in one transaction: each job
        becomes ``returned`` (history) and its polymer gets a new submitted job, in its old directory (it resumes
        from its last finished stage), in a new cycle recorded as :data:`RETRY_LABEL` (it spends no cycle).
        Returns the cycle and the new job ids."""
        now = time.time()
        last = self.last_cycle()
        cycle = 0 if last is None else last + 1
        new: list[int] = []
        with self.db:
            for rank, job_id in enumerate(job_ids):
                old = self.job(job_id)
                if old is None or self._return([job_id], f"given back by workflow retry "
                                                         f"{time.strftime('%Y-%m-%d %H:%M')}") != 1:
                    raise StoreError(f"job {job_id} is not a failed job")
                self.db.execute("INSERT INTO cycles VALUES (?, ?, ?, ?, NULL, NULL, NULL, 0, ?)",
                                (cycle, rank, old["polymer_id"], RETRY_LABEL, now))
                cur = self.db.execute("INSERT INTO jobs (polymer_id, cycle, state, submitted_at, job_dir, kind) "
                                      "VALUES (?, ?, ?, ?, ?, ?)", (old["polymer_id"], cycle, JobState.SUBMITTED.value,
                                                                    now, old["job_dir"], old["kind"]))
                new.append(int(cur.lastrowid))
        return cycle, new

    def counted_cycles(self) -> set[int]:
        """Cycles that spend the campaign's budget: each with a job not given back, ``workflow retry``'s excepted."""
        return {r[0] for r in self.db.execute(
            "SELECT DISTINCT j.cycle FROM jobs j WHERE j.state != ? AND NOT EXISTS (SELECT 1 FROM cycles c WHERE "
            "c.cycle = j.cycle AND c.strategy = ?)", (JobState.RETURNED.value, RETRY_LABEL))}

    def live_jobs(self) -> int:
        """Jobs not given back to the pool (an async campaign's budget counts these)."""
        return int(self.db.execute("SELECT COUNT(*) FROM jobs WHERE state != ?",
                                   (JobState.RETURNED.value,)).fetchone()[0])

    def results(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT r.*, j.cycle, p.smiles, p.name FROM results r JOIN jobs j USING (job_id) "
            "JOIN pool p ON p.polymer_id = r.polymer_id ORDER BY r.job_id").fetchall()

    # --- cycles -----------------------------------------------------------------------------
    def record_selection(self, cycle: int, polymer_ids: list[str], strategy: str, acquisition: list[float | None],
                         mean: list[list[float]] | None, std: list[list[float]] | None, n_training: int,
                         job_dir_for: Callable[[int, str], str] | None = None,
                         kinds: list[JobKind] | None = None) -> list[int]:
        """Record a cycle's picks and, with ``job_dir_for``, their submitted jobs: one transaction.

        A driver killed mid-way leaves either the whole cycle (picks and jobs) or none of it. ``kinds`` (one per
        pick; default: whole jobs) says what each job computes; an MD job's directory is its polymer's screen's.
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
                screened = {r["polymer_id"]: r["job_dir"] for r in self.screens()}
                for pid, kind in zip(polymer_ids, kinds or [JobKind.JOB] * len(polymer_ids)):
                    cur = self.db.execute("INSERT INTO jobs (polymer_id, cycle, state, submitted_at, job_dir, kind) "
                                          "VALUES (?, ?, ?, ?, '', ?)",
                                          (pid, cycle, JobState.SUBMITTED.value, now, JobKind(kind).value))
                    job_id = int(cur.lastrowid)
                    job_dir = screened[pid] if kind == JobKind.MD else job_dir_for(job_id, pid)
                    self.db.execute("UPDATE jobs SET job_dir = ? WHERE job_id = ?", (job_dir, job_id))
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
