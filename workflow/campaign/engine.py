"""The campaign loop: pick, dispatch, store, refit, repeat.

Cycle 0 picks ``initial_size`` polymers at random (less the prior data); each later cycle fits one
GP per objective on the finished polymers (failed ones excluded), scores every polymer never
submitted with the campaign's strategy, and submits the top ``batch_size``. In async mode the loop
keeps ``in_flight`` jobs running and picks one whenever one finishes.

The parts: :mod:`candidates` (pool, descriptors, prior data), :mod:`surrogate.strategies` (what to
pick), :mod:`dispatcher` (jobs in flight, retries, results), :mod:`store` (everything recorded).
The evaluator is given to :meth:`CampaignRunner.run`; this module knows only its interface.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogate.acquisition import Selection
from surrogate.strategies import RandomStrategy, SelectionProblem, Strategy
from workflow.campaign.calibration import Calibration, load_calibration
from workflow.campaign.candidates import Candidates, prepare_pool, stored_results
from workflow.campaign.config import Campaign
from workflow.campaign.costs import oracle_seconds, predict_batch, spent_core_seconds
from workflow.campaign.dispatcher import Dispatcher, job_seed
from workflow.campaign.evaluator import Evaluator
from workflow.campaign.live import LiveReport
from workflow.campaign.lock import DriverLock
from workflow.campaign.store import JobKind, JobState, Store
from workflow.common.errors import CampaignStopped, ConfigError, shorten
from workflow.common.files import file_hash, safe_name
from workflow.job.failures import FailureKind

log = logging.getLogger(__name__)


def store_path(runs_dir: Path, name: str) -> Path:
    return Path(runs_dir) / name / "campaign.sqlite"


def job_dir_name(job_id: int, polymer_id: str) -> str:
    """A job's directory under ``runs/<campaign>/jobs/``."""
    return f"{job_id:05d}_{safe_name(polymer_id)}"


@dataclass(frozen=True)
class Pick:
    """A cycle's choice: the pool ids, the selection behind them, its label, the training size and, in a
    ``qm-first`` campaign, what each job computes (None: whole property jobs)."""

    ids: list[str]
    selection: Selection
    label: str
    n_train: int
    kinds: list[JobKind] | None = None


def _brief(value: object) -> str:
    """A setting for a one-line message: a preset or strategy by its name, anything else shortened."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return f"{shorten(value['name'])} (as stored)"
    return shorten(json.dumps(value), 80)


class CampaignRunner:
    """Runs a campaign; ``strategy`` replaces the campaign's own (benchmarks replay other methods)."""

    def __init__(self, campaign: Campaign, runs_dir: Path, strategy: Strategy | None = None,
                 dry_run: bool = False, profile: dict | None = None):
        self.campaign = campaign
        self.profile = profile  # the site profile of this run, recorded for the report
        self._replay_strategy = strategy
        self.runs_dir = Path(runs_dir).resolve()
        self.run_dir = self.runs_dir / campaign.name
        self.dry_run = dry_run
        campaign.check_files()
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise ConfigError(f"runs directory {self.runs_dir} is a file")
        # inputs by content: a folder moved elsewhere resumes, an export rewritten in place is caught
        self.input_hashes = {label: file_hash(p) for label, p in campaign.input_files().items()}
        path = store_path(self.runs_dir, campaign.name)
        if dry_run or not path.exists():  # read what exists; a new store is made once the inputs are checked
            self.store = Store(path, readonly=True) if path.is_file() else None
        else:
            self.store = Store(path, journal=campaign.store.journal)
        self._check_settings()
        self.calibration = self._calibration()
        self.candidates: Candidates | None = None
        self.failed: dict[FailureKind, int] = {}  # failure kinds of the jobs this run ended
        self.evaluator: Evaluator | None = None  # the run's (a qm-first cycle reads QM values through it)

    def _check_settings(self) -> None:
        """Refuse a store holding a campaign with other settings or another pool (names the keys)."""
        saved = self.store.get_meta("campaign") if self.store is not None else None
        if saved is None:
            return
        current = self.campaign.identity()
        # settings added by a newer PolyScout take their defaults in a store written by an older one
        try:
            started = type(self.campaign).model_validate(saved)
            saved = started.identity()
        except Exception:
            started = None
        changed = sorted(k for k in current.keys() | saved.keys() if current.get(k) != saved.get(k))
        # a setting the campaign file leaves out keeps the value the campaign started with (a default may have
        # changed since: the default strategy did in session 9)
        unwritten = [k for k in changed if started is not None and k in type(self.campaign).model_fields
                     and k not in self.campaign.model_fields_set]
        if unwritten:
            self.campaign = self.campaign.model_copy(update={k: getattr(started, k) for k in unwritten})
            log.info(f"campaign {self.campaign.name}: {', '.join(unwritten)} not in the campaign file: kept as the "
                     f"campaign started ({', '.join(f'{k}: {_brief(saved[k])}' for k in unwritten)})")
            changed = [k for k in changed if k not in unwritten]
        if unwritten:  # an input the file leaves out (the oracle) is the campaign's own
            self.input_hashes = {label: file_hash(p) for label, p in self.campaign.input_files().items()}
        changed += self._changed_inputs()
        if changed:
            raise ConfigError(f"runs/{self.campaign.name} holds a campaign with different settings "
                              f"({', '.join(changed)}): restore them to go on, or give the campaign file another "
                              f"name: to start a new campaign beside this one")
        if started is not None and started.cycles != self.campaign.cycles:
            log.info(f"campaign {self.campaign.name}: cycles {started.cycles} -> {self.campaign.cycles} "
                     f"(the campaign file says so)")

    def _changed_inputs(self) -> list[str]:
        """The input files whose content differs from the campaign's start (paths may differ)."""
        saved = self.store.get_meta("input_sha256")
        if saved is None:  # a store written before inputs were hashed together: the pool's hash alone
            saved = {"pool": self.store.get_meta("pool_sha256", self.input_hashes["pool"])}
            saved |= {k: v for k, v in self.input_hashes.items() if k != "pool"}
        files = self.campaign.input_files()
        changed = [f"{label.split('[')[0]} content ({files[label].name} changed since the campaign started)"
                   for label in sorted(saved.keys() & self.input_hashes.keys()) if saved[label] != self.input_hashes[label]]
        if saved.keys() != self.input_hashes.keys():
            changed.append(f"input files ({', '.join(sorted(saved.keys() ^ self.input_hashes.keys()))})")
        return changed

    def _calibration(self) -> Calibration | None:
        c = self.campaign
        if c.calibration is None:
            return None
        cal = load_calibration(c.calibration)
        if c.oracle is None and c.preset.name not in cal.maps:
            raise ConfigError(f"calibration {c.calibration} has no maps for preset {c.preset.name} "
                              f"(it has: {', '.join(cal.maps) or 'none'})")
        return cal

    def _open_store(self) -> None:
        """The store, written from here on: the campaign's settings and its pool's content hash."""
        if self.store is None or self.store.readonly:
            self.store = Store(store_path(self.runs_dir, self.campaign.name), journal=self.campaign.store.journal)
        self.store.set_meta("campaign", self.campaign.model_dump(mode="json"))
        self.store.set_meta("input_sha256", self.input_hashes)
        if self.profile is not None:
            self.store.set_meta("profile", self.profile)

    def job_dir(self, job_id: int, polymer_id: str) -> str:
        return str(self.run_dir / "jobs" / job_dir_name(job_id, polymer_id))

    def prepare(self) -> Candidates:
        prepared = prepare_pool(self.campaign, self.runs_dir / "descriptor_cache.sqlite", write_cache=not self.dry_run)
        if not prepared.candidates.ids:
            raise ConfigError(f"pool {self.campaign.pool} has no usable polymer ({len(prepared.problems)} row(s) "
                              f"skipped, listed above)")
        if not self.dry_run:
            self._open_store()
            self.store.save_pool(prepared.entries, prepared.problems)
        self.candidates = prepared.candidates
        return self.candidates

    # --- choosing -----------------------------------------------------------------------------
    @property
    def strategy(self) -> Strategy:
        """The strategy that picks: the replay's when one was given, else the campaign's."""
        return self._replay_strategy or self.campaign.strategy

    def open_rows(self) -> list[int]:
        if self.campaign.mode == "qm-first" and self.store is not None:
            from workflow.campaign.qm_first import open_rows

            return open_rows(self.candidates, self.store)  # a screened polymer is open for its MD
        submitted = self.store.submitted_polymers() if self.store is not None else set()
        return self.candidates.open_rows(submitted)

    def choose(self, cycle: int, rows: list[int], X_pending: torch.Tensor | None = None) -> Pick:
        """The polymers cycle ``cycle`` picks from the open ``rows``: random for the initial design or with
        fewer than two results, else the campaign's strategy."""
        c, cand = self.campaign, self.candidates
        q = c.batch_size if c.mode == "batch" else 1
        rng = np.random.default_rng([c.seed, cycle])
        results = stored_results(self.store.results() if self.store is not None else [])
        X_train, Y_train = cand.training_data(results, list(c.objectives), c.maximize)
        n_train = int(X_train.shape[0])
        strategy, label = self.strategy, None
        if not (self.store is not None and self.store.counted_cycles()) and c.initial_size > cand.n_prior:
            q, strategy, label = c.initial_size - cand.n_prior, RandomStrategy(), "random (initial design)"
            n_train = cand.n_prior
        elif n_train < 2 and strategy.needs_model:
            strategy, label = RandomStrategy(), f"random (only {n_train} result(s) to fit on)"
        elif c.mode == "qm-first":
            return self._choose_qm_first(cycle, rows, n_train)
        problem = SelectionProblem(q, cand.X, np.asarray(rows), X_train, Y_train, rng, X_pending, c.kernel)
        with torch.random.fork_rng():  # GP fitting restarts draw from torch's generator: seeded per cycle
            torch.manual_seed(job_seed(c.seed, f"cycle-{cycle}"))
            sel = strategy.select(problem)
        return Pick([cand.ids[rows[i]] for i in sel.indices], sel, label or sel.strategy, n_train)

    def _choose_qm_first(self, cycle: int, rows: list[int], n_train: int) -> Pick:
        """A qm-first cycle (:mod:`workflow.campaign.qm_first`): screens, MD jobs and whole jobs."""
        from workflow.campaign.qm_first import plan

        if self.evaluator is None:
            raise ConfigError("a qm-first cycle reads the QM values through the campaign's evaluator: none given")
        with torch.random.fork_rng():
            torch.manual_seed(job_seed(self.campaign.seed, f"cycle-{cycle}"))
            p = plan(self.campaign, self.runs_dir, self.candidates, self.store, self.evaluator, rows, cycle)
        count = Counter(p.kinds)
        label = (f"qm-first ({count[JobKind.QM]} screen(s), {count[JobKind.MD]} MD, {count[JobKind.JOB]} whole; "
                 f"{p.spent / 3600:.3g} of {p.budget / 3600:.3g} core-hours; stage costs qm {p.costs.qm:.0f} s, "
                 f"md {p.costs.md:.0f} s)")
        return Pick(p.ids, Selection(list(range(len(p.ids))), p.scores, p.mean, p.std, "qm-first"), label, n_train,
                    p.kinds)

    def submit_pick(self, cycle: int, pick: Pick, dispatcher: Dispatcher) -> list[int]:
        """Record the cycle's picks and their jobs in one transaction, then submit the jobs; their ids."""
        sel = pick.selection
        job_ids = self.store.record_selection(cycle, pick.ids, pick.label, sel.acquisition, sel.mean, sel.std,
                                              pick.n_train, job_dir_for=self.job_dir, kinds=pick.kinds)
        for job_id, pid in zip(job_ids, pick.ids):
            row = self.store.job(job_id)
            dispatcher.submit(job_id, pid, row["job_dir"], row["kind"])
        return job_ids

    def predicted_core_seconds(self, polymer_ids: list[str]) -> list[float]:
        """The predicted cost of a job of each of these polymers (see :mod:`workflow.campaign.costs`): one fit."""
        if not polymer_ids:
            return []
        if self.campaign.oracle is not None:
            return [oracle_seconds(self.campaign)] * len(polymer_ids)
        picks = [(pid, self.candidates.smiles[pid]) for pid in polymer_ids]
        return [c.total for c in predict_batch(self.campaign, self.runs_dir, picks)[1]]

    def within_budget(self, what: str, polymer_ids: list[str], dispatcher: Dispatcher) -> bool:
        """False (and one line) when submitting these jobs would cross the campaign's budget: what finished jobs
        spent, plus the predicted cost of the running ones and of these."""
        budget = self.campaign.budget
        if budget is None:
            return True
        spent = sum(spent_core_seconds(self.store).values())
        running = dispatcher.running
        predicted = self.predicted_core_seconds(running + polymer_ids)  # the runs directory read and fitted once
        committed = spent + sum(predicted[:len(running)])
        new = sum(predicted[len(running):])
        if committed + new <= budget.core_hours * 3600:
            return True
        log.warning(f"budget: {what}'s {len(polymer_ids)} job(s), predicted {new / 3600:.4g} core-hours, would bring "
                    f"the campaign to {(committed + new) / 3600:.4g} of its {budget.core_hours:g} core-hours: not "
                    f"submitted (spent so far {spent / 3600:.4g}); raise budget.core_hours to go on")
        return False

    def next_cycle(self) -> int:
        last = self.store.last_cycle() if self.store is not None else None
        return 0 if last is None else last + 1

    def cycles_left(self) -> int:
        """Cycles the campaign may still select: the initial design and ``cycles`` more, less those that spent
        (a cycle whose every job was given back, or one of ``workflow retry``, spends none)."""
        spent = len(self.store.counted_cycles()) if self.store is not None else 0
        return self.campaign.cycles + 1 - spent

    def stop_if_all_failed(self, job_ids: list[int], what: str) -> None:
        """Stop the campaign when every one of ``job_ids`` failed for reasons of the machine or of PolyScout
        (:attr:`FailureKind.infrastructure`), not of the polymers: going on would spend the budget on a broken setup.
        Their polymers go back to the pool and their cycle is not counted."""
        jobs = [self.store.job(j) for j in job_ids]
        if not jobs or any(j["state"] != JobState.FAILED for j in jobs):
            return
        kinds = Counter(FailureKind(j["failure_kind"]) for j in jobs)
        if not all(k.infrastructure for k in kinds):
            return
        self.store.return_jobs(job_ids, f"every job of {what} failed")
        said = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        raise CampaignStopped(f"{what}: all {len(jobs)} job(s) failed ({said}; first: "
                              f"{shorten(jobs[0]['failure_message'], 160)}): the machine or the setup, not the "
                              f"polymers. They are back in the pool and the cycle is not counted: fix the cause "
                              f"(see workflow status {self.campaign.name}) and run again")

    # --- running ------------------------------------------------------------------------------
    def run(self, evaluator: Evaluator) -> None:
        """Run the campaign to its end (or resume it) with ``evaluator``; the store is closed after."""
        with DriverLock(self.run_dir / "driver.lock"):
            try:
                self._run(evaluator)
            finally:
                if self.store is not None:
                    self.store.close()

    def _run(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.prepare()
        evaluator.check_pool(self.candidates.ids)
        with evaluator:
            dispatcher = Dispatcher(self.campaign, self.store, evaluator, self.candidates.smiles, self.calibration)
            driver = self.campaign.driver
            wanted = driver.live_report if driver.live_report is not None else self.campaign.oracle is None
            live = LiveReport(self.campaign.name, self.runs_dir, driver.live_report_reload_s) if wanted else None
            if live is not None:
                dispatcher.on_outcome, dispatcher.on_wait = live.changed, live.tick
            pending = dispatcher.ingest(self.store.jobs(JobState.SUBMITTED))
            if pending:
                log.info(f"resuming {len(pending)} unfinished job(s) from an earlier run")
            for r in pending:
                dispatcher.submit(r["job_id"], r["polymer_id"], r["job_dir"], r["kind"])
            try:
                if self.campaign.mode == "async":
                    self._run_async(dispatcher)
                else:
                    self._run_batches(dispatcher, [r["job_id"] for r in pending])
                self.store.check_in_place()  # "done" only when what was stored is where it is read
                if live is not None:
                    live.close(final=True)
            finally:
                self.failed = dict(dispatcher.failed)
                if live is not None:
                    live.close(final=False)

    def _run_batches(self, dispatcher: Dispatcher, resumed: list[int]) -> None:
        dispatcher.drain()
        self.stop_if_all_failed(resumed, "the jobs resumed from an earlier run")
        while self.cycles_left() > 0:
            self.store.check_in_place()
            cycle, rows = self.next_cycle(), self.open_rows()
            if not rows:
                log.info("every usable polymer of the pool has been evaluated")
                break
            pick = self.choose(cycle, rows)
            if not self.within_budget(f"cycle {cycle}", pick.ids, dispatcher):
                break
            job_ids = self.submit_pick(cycle, pick, dispatcher)
            log.info(f"cycle {cycle}: submitted {len(pick.ids)} job(s): {', '.join(map(shorten, pick.ids))}")
            dispatcher.drain()
            self.stop_if_all_failed(job_ids, f"cycle {cycle}")

    def _run_async(self, dispatcher: Dispatcher) -> None:
        """Keep ``in_flight`` jobs running; whenever one finishes, refit and pick one more, the running
        polymers entering the acquisition as pending points (BoTorch ``X_pending``)."""
        c = self.campaign
        slots = c.in_flight or c.batch_size
        budget = max(c.initial_size - self.candidates.n_prior, 0) + c.cycles * c.batch_size  # prior data counts
        if not self.store.counted_cycles():
            self._async_pick(self.next_cycle(), dispatcher)
        while True:
            while len(dispatcher.futures) < slots and self.store.live_jobs() < budget:
                if not self._async_pick(self.next_cycle(), dispatcher):
                    break
            if not dispatcher.futures:
                return
            dispatcher.drain(until_one=True)
            recent = dispatcher.settled[-slots:]  # the last `slots` jobs all failed: as a batch would
            if len(recent) == slots:
                self.stop_if_all_failed(recent, f"the last {slots} jobs")

    def _async_pick(self, cycle: int, dispatcher: Dispatcher) -> bool:
        rows = self.open_rows()
        if not rows:
            log.info("every usable polymer of the pool has been evaluated")
            return False
        index, X = self.candidates.index, self.candidates.X
        running = [index[pid] for pid in dispatcher.running if pid in index]
        pick = self.choose(cycle, rows, X_pending=X[running] if running else None)
        if not self.within_budget(f"pick {cycle}", pick.ids, dispatcher):
            return False
        self.submit_pick(cycle, pick, dispatcher)
        log.info(f"pick {cycle}: submitted {', '.join(map(shorten, pick.ids))} ({len(dispatcher.futures)} running)")
        return True

    def plan(self, evaluator: Evaluator | None = None) -> tuple[int | None, str, list[tuple[str, str]]]:
        """The next cycle's picks without submitting or recording anything: ``(cycle, strategy, [(id, psmiles)])``.

        ``cycle`` is ``None`` when the campaign has nothing left to select. A qm-first cycle reads QM values through
        ``evaluator``.
        """
        self.evaluator = evaluator
        cand = self.prepare()
        cycle, rows = self.next_cycle(), self.open_rows()
        if self.cycles_left() <= 0 or not rows:
            return None, "", []
        pick = self.choose(cycle, rows)
        return cycle, pick.label, [(pid, cand.smiles[pid]) for pid in pick.ids]
