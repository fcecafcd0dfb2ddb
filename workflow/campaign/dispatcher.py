"""Jobs in flight: submission through the evaluator, waiting, the failure policy, and results into the store.

Every result reaches the store through :meth:`Dispatcher.settle` or :meth:`Dispatcher.ingest`:
the objectives are checked there, once, and a job without finite objectives is that job's
failure, never the driver's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any, Callable

from workflow.campaign.calibration import Calibration
from workflow.campaign.config import Campaign
from workflow.campaign.evaluator import Evaluator, JobRequest
from workflow.campaign.store import Store
from workflow.common.errors import shorten
from workflow.job.failures import FailureKind, JobFailure

log = logging.getLogger(__name__)

MAX_OBJECTIVE_MAGNITUDE = 1e100
"""An objective beyond this is not a measurement (no property in a record's units comes near): its square overflows
the GP's standardisation, so it would stop every later fit. Such a result is that job's ``invalid_result``."""


def job_seed(seed: int, label: str) -> int:
    """A seed of its own for a job (``label`` its polymer id) or a cycle, from the campaign's seed."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class Dispatcher:
    """Submits jobs through an evaluator, settles their futures under the retry policy, records results."""

    def __init__(self, campaign: Campaign, store: Store, evaluator: Evaluator, smiles: dict[str, str],
                 calibration: Calibration | None = None):
        self.campaign, self.store, self.evaluator, self.smiles = campaign, store, evaluator, smiles
        self.calibration = calibration
        self.futures: dict[Future, tuple[int, JobRequest]] = {}
        self.failed: Counter[FailureKind] = Counter()  # failure kinds of this run's jobs
        self.settled: list[int] = []  # job ids in the order their outcome (result or failure) was stored
        self.on_outcome: Callable[[], None] | None = None  # called after each stored outcome (the live report)
        self.on_wait: Callable[[], None] | None = None  # called each time the driver has waited ``poll_s``

    def request(self, job_id: int, polymer_id: str, job_dir: str | Path, kind: str = "job") -> JobRequest | None:
        """The job request of a stored job, or None (recorded as failed) when its polymer left the pool."""
        if polymer_id not in self.smiles:
            self.store.fail_job(job_id, FailureKind.INVALID_INPUT, "prep", "polymer is no longer a usable pool entry")
            return None
        return JobRequest(polymer_id, self.smiles[polymer_id], Path(job_dir),
                          job_seed(self.campaign.seed, polymer_id), kind)

    def submit(self, job_id: int, polymer_id: str, job_dir: str | Path, kind: str = "job") -> None:
        job = self.request(job_id, polymer_id, job_dir, kind)
        if job is not None:
            self.futures[self.evaluator.submit(job)] = (job_id, job)

    @property
    def running(self) -> list[str]:
        return [job.polymer_id for _, job in self.futures.values()]

    def ingest(self, stored_jobs: list) -> list:
        """Store the results that jobs wrote while no driver was listening; return the other jobs."""
        left = []
        for r in stored_jobs:
            job = self.request(r["job_id"], r["polymer_id"], r["job_dir"], r["kind"])
            if job is None:
                continue
            record = self.evaluator.finished(job)
            if record is None:  # missing, truncated or made by another job: the job runs (resumes) again
                left.append(r)
                continue
            log.info(f"  {shorten(job.polymer_id)}: finished while the driver was away; result ingested from "
                     f"{job.job_dir}")
            self.record(r["job_id"], job, record)
        return left

    def drain(self, until_one: bool = False) -> None:
        """Wait for jobs (all, or ``until_one`` finished), telling the terminal every few minutes."""
        t0 = last = time.monotonic()
        every = self.campaign.driver.report_every_s
        while self.futures:
            self.store.check_in_place()  # a store deleted under the driver stops it, not after every job
            done, _ = wait(list(self.futures), timeout=self.campaign.driver.poll_s, return_when=FIRST_COMPLETED)
            for fut in done:
                self.settle(fut)
            if self.on_wait is not None:
                self.on_wait()
            if done and until_one:
                return
            if not done and time.monotonic() - last > every:
                last = time.monotonic()
                log.info(f"  waiting on {len(self.futures)} job(s) ({', '.join(map(shorten, self.running))}); "
                         f"{(last - t0) / 60:.0f} min so far")

    def settle(self, fut: Future) -> None:
        """Record a finished future, or resubmit its job under the failure policy."""
        job_id, job = self.futures.pop(fut)
        exc = fut.exception()
        if exc is None:
            self.record(job_id, job, fut.result())
            return
        done = self.evaluator.finished(job)  # a job that wrote its result before its worker was lost
        if done is not None:
            log.info(f"  {shorten(job.polymer_id)}: its worker failed ({type(exc).__name__}) after the job finished; "
                     f"result ingested from {job.job_dir}")
            self.record(job_id, job, done)
            return
        failure = self.evaluator.failure(exc)
        attempts = self.store.job(job_id)["attempts"]
        allowed = self.campaign.retries[failure.kind]
        if attempts < allowed:
            self.evaluator.prepare_retry(job, failure.kind)  # not_equilibrated: the job samples once more
            n = self.store.retry_job(job_id, failure.kind, failure.message)
            log.warning(f"  {shorten(job.polymer_id)}: {failure.kind} in {failure.stage} ({failure.message}); "
                     f"attempt {n} of {allowed}, resuming from its last completed stage")
            self.futures[self.evaluator.submit(job)] = (job_id, job)
            return
        self.store.fail_job(job_id, failure.kind, failure.stage, failure.message)
        self.failed[failure.kind] += 1
        self._settled(job_id)
        log.warning(f"  {shorten(job.polymer_id)}: FAILED ({failure.kind} in {failure.stage}): {failure.message}")

    def _settled(self, job_id: int) -> None:
        self.settled.append(job_id)
        if self.on_outcome is not None:
            self.on_outcome()

    def record(self, job_id: int, job: JobRequest, record: dict[str, Any]) -> None:
        """Store a job's record; one without a finite value of every objective is the job's failure. A QM screen's
        result is stored as the polymer's screen as soon as it arrives."""
        if job.kind == "qm":
            return self.record_screen(job_id, job, record)
        objectives = {}
        for name in self.campaign.objectives:
            try:
                value = float(record.get(name))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and abs(value) <= MAX_OBJECTIVE_MAGNITUDE):
                self.store.fail_job(job_id, FailureKind.INVALID_RESULT, "result",
                                    f"the result has no finite {name!r} within +-{MAX_OBJECTIVE_MAGNITUDE:g} "
                                    f"(got {str(record.get(name))[:40]!r})")
                self.failed[FailureKind.INVALID_RESULT] += 1
                self._settled(job_id)
                log.warning(f"  {shorten(job.polymer_id)}: FAILED: no usable {name!r} in its result")
                return
            objectives[name] = value
        if self.calibration is not None:  # the record (and the store's property columns) keep the raw values
            objectives = self.calibration.apply(str(record.get("preset")), objectives)
        self.store.finish_job(job_id, job.polymer_id, record, objectives)
        self._settled(job_id)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in objectives.items())
        log.info(f"  {shorten(job.polymer_id)}: done, {shown}")

    def record_screen(self, job_id: int, job: JobRequest, record: dict[str, Any]) -> None:
        try:
            screen = self.evaluator.screen(record)
            if not (math.isfinite(screen.polarizability_d) and screen.polarizability_d > 0
                    and math.isfinite(screen.mol_weight) and screen.mol_weight > 0):
                raise JobFailure(FailureKind.INVALID_RESULT, "result", f"polarizability {screen.polarizability_d} "
                                                                       f"A^3, weight {screen.mol_weight} g/mol")
        except JobFailure as failure:
            self.store.fail_job(job_id, failure.kind, failure.stage, failure.message)
            self.failed[failure.kind] += 1
            self._settled(job_id)
            log.warning(f"  {shorten(job.polymer_id)}: screen FAILED: {failure.message}")
            return
        self.store.finish_screen(job_id, job.polymer_id, record, screen.polarizability_d, screen.mol_weight)
        self._settled(job_id)
        log.info(f"  {shorten(job.polymer_id)}: screened, alpha_D={screen.polarizability_d:.4g} A^3, "
                 f"M={screen.mol_weight:.4g} g/mol")
