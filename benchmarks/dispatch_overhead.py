"""Parsl dispatch overhead per task on a profile: submit -> start, and finish -> result in the store.

    python benchmarks/dispatch_overhead.py [--profile local|slurm|PATH] [--tasks 20]

Tasks are trivial Parsl python apps run one after another (each waits for the previous), so the
figures are pure latency: ``submit_to_start_s`` (the app's first line minus the driver's submit
time), ``finish_to_stored_s`` (the campaign store's commit minus the app's last line). The first
task also pays for starting a block (a batch job on SLURM), reported as ``first_task_s``. Times
are medians over the tasks after the first. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.campaign.store import Store  # noqa: E402
from workflow.dispatch.profiles import load_profile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()

    import parsl
    from parsl import python_app

    @python_app
    def stamp() -> dict:
        import time as t

        start = t.time()
        return {"started_at": start, "ended_at": t.time()}

    profile = load_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "campaign.sqlite")
        store.save_pool([(f"T{n}", n + 1, "*CC*", "*CC*", None) for n in range(args.tasks)], [])
        t0 = time.time()
        dfk = parsl.load(profile.parsl_config(Path(tmp) / "parsl"))
        load_s = time.time() - t0
        rows = []
        try:
            for n in range(args.tasks):
                job_id = store.record_selection(n, [f"T{n}"], "benchmark", [None], None, None, 0,
                                                job_dir_for=lambda j, pid: str(Path(tmp) / pid))[0]
                submitted = time.time()
                record = stamp().result()
                store.finish_job(job_id, f"T{n}", record, {"x": 0.0})
                stored = time.time()
                rows.append((submitted, record["started_at"], record["ended_at"], stored))
        finally:
            dfk.cleanup()
            parsl.clear()
    first = rows[0][3] - rows[0][0]
    to_start = [s - sub for sub, s, _, _ in rows[1:]]
    to_store = [st - e for _, _, e, st in rows[1:]]
    figures = {"profile": profile.name, "scheduler": profile.scheduler, "tasks": args.tasks,
               "load_s": round(load_s, 3), "first_task_s": round(first, 3),
               "submit_to_start_s": round(statistics.median(to_start), 4),
               "finish_to_stored_s": round(statistics.median(to_store), 4),
               "round_trip_s": round(statistics.median(st - sub for sub, _, _, st in rows[1:]), 4)}
    print(f"profile {profile.name} ({profile.scheduler}): Parsl load {load_s:.2f} s, first task {first:.2f} s "
          f"(includes starting a block); then per task: submit -> start {figures['submit_to_start_s'] * 1e3:.1f} ms, "
          f"finish -> stored {figures['finish_to_stored_s'] * 1e3:.1f} ms (median of {len(rows) - 1})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
