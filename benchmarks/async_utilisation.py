"""Slot utilisation of batch vs async campaigns on a simulated run with uneven job times.

    python benchmarks/async_utilisation.py [--data PATH] [--slots 5] [--low 20] [--high 80]

Two oracle campaigns on PI1070 (refractive_index and Cp, ehvi-topk, same seed), whose "jobs" take
a random time in [low, high] seconds: ``mode: batch`` (batches of ``slots``: wait for all, refit,
pick the next batch) and ``mode: async`` (``slots`` jobs in flight, refit and pick one whenever one
finishes). Utilisation = job-seconds / (slots x wall time from first start to last end). Both run
side by side. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._pi1070 import ID_COLUMN, REPO, data_argument, load_table, write_pool  # noqa: E402


def run(job: tuple[str, dict]) -> dict:
    mode, o = job
    from workflow.campaign.config import Campaign, OracleSettings
    from workflow.campaign.engine import CampaignRunner
    from workflow.campaign.store import Store
    from workflow.dispatch.evaluators import OracleEvaluator

    runs, name = Path(o["runs"]), f"util-{mode}"
    shutil.rmtree(runs / name, ignore_errors=True)
    camp = Campaign(name=name, pool=Path(o["pool"]), objectives={"refractive_index": "maximize", "Cp": "maximize"},
                    initial_size=o["slots"], batch_size=o["slots"], cycles=o["cycles"], seed=0, mode=mode,
                    in_flight=o["slots"], oracle=OracleSettings(table=Path(o["data"]), id_column=ID_COLUMN,
                                                                duration_s=(o["low"], o["high"])))
    runner = CampaignRunner(camp, runs)
    runner.run(OracleEvaluator(camp.oracle))
    jobs = Store(runs / name / "campaign.sqlite", readonly=True).jobs()
    start = min(j["started_at"] for j in jobs)
    end = max(j["ended_at"] for j in jobs)
    busy = sum(j["ended_at"] - j["started_at"] for j in jobs)
    return {"mode": mode, "jobs": len(jobs), "wall_s": end - start, "utilisation": busy / (o["slots"] * (end - start))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_argument(parser)
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--low", type=float, default=20.0)
    parser.add_argument("--high", type=float, default=80.0)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "benchmarks" / "async")
    args = parser.parse_args()
    table = load_table(args.data)
    pool = write_pool(table, args.runs / "pool.csv")
    o = {"runs": str(args.runs), "pool": str(pool), "data": str(args.data.resolve()), "slots": args.slots,
         "cycles": args.cycles, "low": args.low, "high": args.high}
    from surrogate.descriptor import featurize
    from workflow.campaign.pool import load_pool

    featurize(load_pool(pool).entries["canonical"].tolist(), cache_path=args.runs / "descriptor_cache.sqlite")
    t0 = time.time()
    with mp.get_context("spawn").Pool(2) as workers:
        res = {r["mode"]: r for r in workers.map(run, [("batch", o), ("async", o)])}
    for m in ("batch", "async"):
        r = res[m]
        print(f"{m:>5}: {r['jobs']} jobs, {args.slots} slots, jobs of {args.low:g}-{args.high:g} s: "
              f"wall {r['wall_s']:.0f} s, utilisation {r['utilisation']:.2f}")
    print(f"async/batch wall-time ratio {res['async']['wall_s'] / res['batch']['wall_s']:.2f} "
          f"({time.time() - t0:.0f} s for both)")
    print(json.dumps({"slots": args.slots, "jobs": res["batch"]["jobs"], "duration_s": [args.low, args.high],
                      "batch_utilisation": round(res["batch"]["utilisation"], 3),
                      "async_utilisation": round(res["async"]["utilisation"], 3),
                      "batch_wall_s": round(res["batch"]["wall_s"], 1), "async_wall_s": round(res["async"]["wall_s"], 1)}))


if __name__ == "__main__":
    main()
