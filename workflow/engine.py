"""The campaign loop: featurize the pool, pick, dispatch, store, refit, repeat.

Cycle 0 picks ``initial_size`` polymers at random; each later cycle fits one GP per objective on
the finished polymers (failed ones excluded), scores every polymer never submitted, and submits
the top ``batch_size``. Results are written to the store as each job finishes.

Results exported from earlier campaigns (``initial_data``) join the training data from cycle 0 on
and count toward the initial design (cycle 0 then picks only the rest at random, or, when they
are enough, picks ``batch_size`` by the strategy); pool polymers among them are never submitted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from surrogate.acquisition import Selection, select
from surrogate.descriptor import featurize
from surrogate.gp import DTYPE, fit_model
from surrogate.pareto import to_max_form
from workflow.config import Campaign, ConfigError
from workflow.evaluators import Evaluator, OracleEvaluator, ParslEvaluator, make_evaluator  # noqa: F401 (re-export)
from workflow.job import RECORD_FILE, JobFailure, grant_retry, read_json
from workflow.pool import canonical_psmiles, load_pool, read_table
from workflow.store import Store

Log = Callable[[str], None]


def store_path(runs_dir: Path, name: str) -> Path:
    return Path(runs_dir) / name / "campaign.sqlite"


def job_seed(seed: int, polymer_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{polymer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _safe(polymer_id: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]", "_", polymer_id)[:40]
    return s or hashlib.sha256(polymer_id.encode()).hexdigest()[:12]


class DriverLock:
    """One driver per campaign: an exclusive ``flock`` on ``runs/<name>/driver.lock``.

    The operating system drops the lock when the driver dies (``kill -9`` included), so a crash
    never leaves a stale lock; a second ``workflow run`` meanwhile refuses with who holds it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def __enter__(self) -> "DriverLock":
        import fcntl
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"campaign in {self.path.parent} is already being run by {holder}; "
                              f"wait for it or stop it (workflow status works meanwhile)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the flock
            self._fh = None


Selector = Callable[[int, torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor, np.random.Generator,
                     torch.Tensor | None], Selection]


def surrogate_selector(strategy: str, kernel: str = "ard") -> Selector:
    """Fit one GP per objective on the finished polymers and pick by ``strategy``.

    A selector gets ``(q, X, candidates, X_train, Y_train, rng, X_pending)``: the pool matrix, the
    pool rows still open, the training data in maximisation form, the cycle's random generator,
    and the inputs of jobs still running (async mode) or None.
    """
    def pick(q, X, candidates, X_train, Y_train, rng, X_pending=None) -> Selection:
        model = fit_model(X_train, Y_train, kernel=kernel)
        return select(strategy, q, X, rng, model=model, Y_train=Y_train, X_train=X_train, candidates=candidates,
                      X_pending=X_pending)

    return pick


@dataclass
class PriorData:
    """Finished polymers from earlier campaigns' exports, as training data (maximisation form)."""

    X: torch.Tensor
    Y: torch.Tensor
    known: set[str]  # pool ids among them: never submitted

    def __len__(self) -> int:
        return int(self.X.shape[0])


def read_prior_results(paths: list[Path], objectives: list[str]) -> pd.DataFrame:
    """Rows ``canonical, <objectives>`` of the finished polymers in exports (one per polymer, first wins)."""
    frames = []
    for path in paths:
        df = read_table(Path(path), keep_text=False)
        missing = [c for c in ("smiles", *objectives) if c not in df.columns]
        if missing:
            raise ConfigError(f"initial data {path} lacks column(s) {', '.join(missing)} (an export of a campaign "
                              f"with objectives {', '.join(objectives)} has them)")
        if "status" in df.columns:
            df = df[df["status"] == "done"]
        vals = df[objectives].apply(pd.to_numeric, errors="coerce")
        ok = np.isfinite(vals.to_numpy(dtype=float)).all(axis=1)
        canon = [canonical_psmiles(s) if isinstance(s, str) else None for s in df["smiles"]]
        part = pd.DataFrame({"canonical": canon, **{n: vals[n] for n in objectives}})[ok]
        frames.append(part[part["canonical"].notna()])
    if not frames:
        return pd.DataFrame(columns=["canonical", *objectives])
    return pd.concat(frames, ignore_index=True).drop_duplicates("canonical")


class CampaignRunner:
    """Runs a campaign; ``selector`` replaces the campaign's strategy (used by benchmarks)."""

    def __init__(self, campaign: Campaign, runs_dir: Path, log: Log = print, selector: Selector | None = None,
                 dry_run: bool = False):
        self.campaign = campaign
        self.selector = selector or surrogate_selector(campaign.strategy, campaign.kernel)
        self.run_dir = Path(runs_dir) / campaign.name
        self.runs_dir = Path(runs_dir)
        self.log = log
        self.dry_run = dry_run
        path = store_path(runs_dir, campaign.name)
        if dry_run:  # read what exists, write nothing
            self.store = Store(path, readonly=True) if path.is_file() else None
        else:
            self.store = Store(path)
        saved = self.store.get_meta("campaign") if self.store is not None else None
        current = campaign.model_dump(mode="json")
        if saved is not None:
            # settings added by a newer PolyScout take their defaults in a store written by an older one
            try:
                saved = type(campaign).model_validate(saved).model_dump(mode="json")
            except Exception:
                pass
            changed = sorted(k for k in current.keys() | saved.keys() if current.get(k) != saved.get(k))
            if changed:
                raise ConfigError(f"runs/{campaign.name} holds a campaign with different settings "
                                  f"({', '.join(changed)}); rename the campaign or remove {self.run_dir}")
        if not dry_run:
            self.store.set_meta("campaign", current)
        self.prior: PriorData | None = None

    # --- pool and descriptors -----------------------------------------------------------------
    def prepare_pool(self) -> tuple[list[str], dict[str, str], torch.Tensor]:
        pool = load_pool(self.campaign.pool)
        problems = [(p.row, p.id, "validation", p.problem) for p in pool.problems]
        for p in pool.problems:
            self.log(f"pool {pool.path.name}: {p}; skipped")
        df = pool.entries
        feats = featurize(df["canonical"].tolist(), cache_path=self.runs_dir / "descriptor_cache.sqlite",
                          workers=os.cpu_count() or 1, timeout_s=120, write_cache=not self.dry_run)
        rows = df.index.to_numpy()
        for i, reason in sorted(feats.failures.items()):
            problems.append((int(rows[i]) + 1, df["id"].iloc[i], "descriptor", reason))
            self.log(f"pool {pool.path.name}: id {df['id'].iloc[i]}: descriptor failed ({reason}); skipped")
        ok = np.array([i not in feats.failures for i in range(len(df))], dtype=bool)
        names = df["name"] if "name" in df.columns else pd.Series([None] * len(df))
        entries = [(pid, int(r) + 1, smi, can, (nm or None))
                   for pid, r, smi, can, nm in zip(df["id"], rows, df["smiles"], df["canonical"], names)]
        if not self.dry_run:
            self.store.save_pool(entries, problems)
        ids = df["id"][ok].tolist()
        smiles = dict(zip(df["id"][ok], df["smiles"][ok]))
        X = torch.as_tensor(feats.X[ok], dtype=DTYPE)
        self.log(f"pool: {len(ids)} usable polymers ({feats.cached} descriptors cached, "
                 f"{feats.computed} computed in {feats.seconds:.1f} s, {len(problems)} skipped)")
        if self.campaign.initial_data:
            self.prior = self._load_prior(ids, df["canonical"][ok].tolist(), X)
        return ids, smiles, X

    def _load_prior(self, ids: list[str], canonical: list[str], X: torch.Tensor) -> PriorData:
        c = self.campaign
        names = list(c.objectives)
        prior = read_prior_results(c.initial_data, names)
        row_of = {can: i for i, can in enumerate(canonical)}  # canonical PSMILES -> row of X
        rows = prior["canonical"].map(row_of)
        inside = rows.notna().to_numpy()
        outside = prior.loc[~inside, "canonical"].tolist()  # not in this pool: featurized for training only
        feats = featurize(outside, cache_path=self.runs_dir / "descriptor_cache.sqlite",
                          workers=os.cpu_count() or 1, timeout_s=120, write_cache=not self.dry_run)
        usable = np.array([i not in feats.failures for i in range(len(outside))], dtype=bool)
        Y = prior[names].to_numpy(dtype=float)
        X_prior = torch.cat([X[rows[inside].astype(int).tolist()],
                             torch.as_tensor(feats.X[usable], dtype=DTYPE).reshape(-1, X.shape[1])])
        Y_prior = torch.as_tensor(np.concatenate([Y[inside], Y[~inside][usable]]), dtype=DTYPE)
        known = {ids[int(r)] for r in rows[inside]}
        self.log(f"initial data: {X_prior.shape[0]} finished polymer(s) from {len(c.initial_data)} file(s) "
                 f"({len(known)} in this pool, not run again; {int(usable.sum())} outside it, used for training)")
        return PriorData(X_prior, to_max_form(Y_prior.reshape(-1, len(names)), c.maximize), known)

    # --- the loop -----------------------------------------------------------------------------
    def run(self, evaluator: Evaluator) -> None:
        with DriverLock(self.run_dir / "driver.lock"):
            self._run(evaluator)

    def _run(self, evaluator: Evaluator) -> None:
        ids, smiles, X = self.prepare_pool()
        index = {pid: i for i, pid in enumerate(ids)}
        c = self.campaign
        with evaluator:
            pending = self._ingest_finished(self.store.jobs("submitted"))
            if pending:
                self.log(f"resuming {len(pending)} unfinished job(s) from an earlier run")
            if c.mode == "async":
                self._run_async(evaluator, ids, smiles, X, index, pending)
                return
            if pending:
                self._dispatch(evaluator, [(r["job_id"], r["polymer_id"], Path(r["job_dir"])) for r in pending], smiles)
            last = self.store.last_cycle()
            for cycle in range(0 if last is None else last + 1, c.cycles + 1):
                cand = self._open_candidates(ids)
                if not cand:
                    self.log("every usable polymer of the pool has been evaluated")
                    break
                picks, job_ids = self._select(cycle, cand, ids, X, index)
                jobs = [(job_id, pid, Path(self.job_dir(job_id, pid))) for job_id, pid in zip(job_ids, picks)]
                self.log(f"cycle {cycle}: submitted {len(jobs)} job(s): {', '.join(p for _, p, _ in jobs)}")
                self._dispatch(evaluator, jobs, smiles)

    def plan(self) -> tuple[int | None, str, list[tuple[str, str]]]:
        """The next cycle's picks without submitting or recording anything: ``(cycle, strategy, [(id, psmiles)])``.

        ``cycle`` is ``None`` when the campaign has nothing left to select.
        """
        ids, smiles, X = self.prepare_pool()
        index = {pid: i for i, pid in enumerate(ids)}
        last = self.store.last_cycle() if self.store is not None else None
        cycle = 0 if last is None else last + 1
        cand = self._open_candidates(ids)
        if cycle > self.campaign.cycles or not cand:
            return None, "", []
        picks, sel, strategy, _ = self._choose(cycle, cand, ids, X, index)
        return cycle, strategy, [(pid, smiles[pid]) for pid in picks]

    def _ingest_finished(self, pending: list) -> list:
        """Store the results that jobs wrote while no driver was listening; return the others."""
        left = []
        for r in pending:
            record = read_json(Path(r["job_dir"]) / RECORD_FILE) if r["job_dir"] else None
            if record is None or any(record.get(n) is None for n in self.campaign.objectives):
                left.append(r)  # missing, truncated or corrupt: not a result; the job runs (resumes) again
                continue
            done: Future = Future()
            done.set_result(record)
            self.log(f"  {r['polymer_id']}: finished while the driver was away; result ingested from {r['job_dir']}")
            self._record(done, r["job_id"], r["polymer_id"])
        return left

    def _training_data(self, index: dict[str, int], X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        names = list(self.campaign.objectives)
        rows, ys = [], []
        for r in (self.store.results() if self.store is not None else []):
            obj = json.loads(r["objectives"])
            if r["polymer_id"] in index and all(math.isfinite(obj.get(n, math.nan)) for n in names):
                rows.append(index[r["polymer_id"]])
                ys.append([obj[n] for n in names])
        Y = torch.tensor(ys, dtype=DTYPE).reshape(-1, len(names))
        X_train, Y_train = X[rows], to_max_form(Y, self.campaign.maximize)
        if self.prior is not None and len(self.prior):
            X_train, Y_train = torch.cat([self.prior.X, X_train]), torch.cat([self.prior.Y, Y_train])
        return X_train, Y_train

    def _select(self, cycle: int, cand: list[int], ids: list[str], X: torch.Tensor, index: dict[str, int],
                X_pending: torch.Tensor | None = None) -> tuple[list[str], list[int]]:
        picks, sel, strategy, n_train = self._choose(cycle, cand, ids, X, index, X_pending)
        job_ids = self.store.record_selection(cycle, picks, strategy, sel.acquisition, sel.mean, sel.std, n_train,
                                              job_dir_for=self.job_dir)
        return picks, job_ids

    def _open_candidates(self, ids: list[str]) -> list[int]:
        """Rows of the usable pool never submitted (failed polymers included: they are not retried)."""
        taken = self.store.submitted_polymers() if self.store is not None else set()
        if self.prior is not None:
            taken |= self.prior.known
        return [i for i, pid in enumerate(ids) if pid not in taken]

    def job_dir(self, job_id: int, polymer_id: str) -> str:
        return str(self.run_dir / "jobs" / f"{job_id:05d}_{_safe(polymer_id)}")

    def _choose(self, cycle: int, cand: list[int], ids: list[str], X: torch.Tensor, index: dict[str, int],
                X_pending: torch.Tensor | None = None):
        c = self.campaign
        q = c.batch_size if c.mode == "batch" else 1
        rng = np.random.default_rng([c.seed, cycle])
        torch.manual_seed(job_seed(c.seed, f"cycle-{cycle}"))  # GP fitting restarts draw from torch's RNG
        n_prior = len(self.prior) if self.prior is not None else 0
        if cycle == 0 and c.initial_size > n_prior:
            sel = select("random", c.initial_size - n_prior, X, rng, candidates=cand)
            strategy, n_train = "random (initial design)", n_prior
        else:
            X_train, Y_train = self._training_data(index, X)
            n_train = X_train.shape[0]
            if c.strategy == "random" or n_train < 2:
                sel = select("random", q, X, rng, candidates=cand)
                strategy = "random" if c.strategy == "random" else f"random (only {n_train} result(s) to fit on)"
            else:
                sel = self.selector(q, X, np.asarray(cand), X_train, Y_train, rng, X_pending)
                strategy = sel.strategy
        return [ids[cand[i]] for i in sel.indices], sel, strategy, n_train

    def _submit(self, evaluator: Evaluator, job_id: int, pid: str, job_dir: Path, smiles: dict[str, str],
                futures: dict[Future, tuple[int, str, Path]]) -> None:
        if pid not in smiles:
            self.store.fail_job(job_id, "invalid_input", "prep", "polymer is no longer a usable pool entry")
            return
        futures[evaluator.submit(pid, smiles[pid], job_dir, job_seed(self.campaign.seed, pid))] = (job_id, pid, job_dir)

    def _settle(self, fut: Future, futures: dict, evaluator: Evaluator, smiles: dict[str, str]) -> None:
        """Record a finished future, or resubmit it under the failure policy."""
        job_id, pid, job_dir = futures.pop(fut)
        exc = fut.exception()
        if isinstance(exc, JobFailure):
            attempts = self.store.job(job_id)["attempts"]
            if attempts < self.campaign.retries[exc.kind]:
                grant_retry(job_dir, exc.kind)  # not_equilibrated: the job samples once more
                n = self.store.retry_job(job_id, exc.kind, exc.message)
                self.log(f"  {pid}: {exc.kind} in {exc.stage} ({exc.message}); attempt {n} of "
                         f"{self.campaign.retries[exc.kind]}, resuming from its last completed stage")
                self._submit(evaluator, job_id, pid, job_dir, smiles, futures)
                return
        self._record(fut, job_id, pid)

    def _dispatch(self, evaluator: Evaluator, jobs: list[tuple[int, str, Path]], smiles: dict[str, str]) -> None:
        futures: dict[Future, tuple[int, str, Path]] = {}
        for job_id, pid, job_dir in jobs:
            self._submit(evaluator, job_id, pid, job_dir, smiles, futures)
        self._drain(futures, evaluator, smiles)

    def _drain(self, futures: dict, evaluator: Evaluator, smiles: dict[str, str], until_one: bool = False) -> None:
        """Wait for jobs (all, or ``until_one`` finished), telling the terminal every few minutes."""
        t0 = last = time.monotonic()
        while futures:
            done, _ = wait(list(futures), timeout=30, return_when=FIRST_COMPLETED)
            for fut in done:
                self._settle(fut, futures, evaluator, smiles)
            if done and until_one:
                return
            if not done and time.monotonic() - last > 300:
                last = time.monotonic()
                self.log(f"  waiting on {len(futures)} job(s) ({', '.join(p for _, p, _ in futures.values())}); "
                         f"{(last - t0) / 60:.0f} min so far")

    # --- asynchronous mode --------------------------------------------------------------------
    def _run_async(self, evaluator: Evaluator, ids: list[str], smiles: dict[str, str], X: torch.Tensor,
                   index: dict[str, int], pending: list) -> None:
        """Keep ``in_flight`` jobs running; whenever one finishes, refit and pick one more, the
        running polymers entering the acquisition as pending points (BoTorch ``X_pending``)."""
        c = self.campaign
        slots = c.in_flight or c.batch_size
        n_prior = len(self.prior) if self.prior is not None else 0
        budget = max(c.initial_size - n_prior, 0) + c.cycles * c.batch_size  # earlier results count as initial
        futures: dict[Future, tuple[int, str, Path]] = {}
        for r in pending:
            self._submit(evaluator, r["job_id"], r["polymer_id"], Path(r["job_dir"]), smiles, futures)
        if self.store.last_cycle() is None:
            self._async_pick(0, ids, X, index, futures, evaluator, smiles)
        while True:
            while len(futures) < slots and len(self.store.jobs()) < budget:
                cycle = (self.store.last_cycle() or 0) + 1
                if not self._async_pick(cycle, ids, X, index, futures, evaluator, smiles):
                    break
            if not futures:
                return
            self._drain(futures, evaluator, smiles, until_one=True)

    def _async_pick(self, cycle: int, ids, X, index, futures, evaluator, smiles) -> bool:
        cand = self._open_candidates(ids)
        if not cand:
            self.log("every usable polymer of the pool has been evaluated")
            return False
        running = [index[pid] for _, pid, _ in futures.values() if pid in index]
        picks, job_ids = self._select(cycle, cand, ids, X, index, X_pending=X[running] if running else None)
        for job_id, pid in zip(job_ids, picks):
            self._submit(evaluator, job_id, pid, Path(self.job_dir(job_id, pid)), smiles, futures)
        self.log(f"pick {cycle}: submitted {', '.join(picks)} ({len(futures)} running)")
        return True

    def _record(self, fut: Future, job_id: int, pid: str) -> None:
        exc = fut.exception()
        if exc is not None:
            if isinstance(exc, JobFailure):
                kind, stage, msg = exc.kind, exc.stage, exc.message
            else:
                kind, stage, msg = "md_failed", "dispatch", f"{type(exc).__name__}: {exc}"
            self.store.fail_job(job_id, kind, stage, msg)
            self.log(f"  {pid}: FAILED ({kind} in {stage}): {msg}")
            return
        record: dict[str, Any] = fut.result()
        objectives = {}
        for name in self.campaign.objectives:
            v = record.get(name)
            if v is None or not math.isfinite(float(v)):
                self.store.fail_job(job_id, "invalid_input", "result", f"the result has no finite {name!r}")
                self.log(f"  {pid}: FAILED: no finite {name!r} in its result")
                return
            objectives[name] = float(v)
        self.store.finish_job(job_id, pid, record, objectives)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in objectives.items())
        self.log(f"  {pid}: done, {shown}")
