"""The HTML report of a 200-result campaign on the default 12,364-polymer pool: file size, time to write it,
and time until headless Chromium has drawn it (offline); writes the README's screenshot.

The store is filled through the Store API (pool, 20 cycles of 10 picks with predictions, results and a few
failures) so that the report, not the simulation, is measured. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.campaign.pool import load_pool  # noqa: E402
from workflow.campaign.store import Store  # noqa: E402
from workflow.results.html_report import write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def fill(store: Store, pool_path: Path, results: int, seed: int = 0) -> None:
    pool = load_pool(pool_path)
    df = pool.entries
    store.set_meta("campaign", {"name": "report-size", "pool": str(pool_path), "preset": {"name": "quick"},
                                "objectives": {"refractive_index": "maximize", "abbe_number": "maximize"},
                                "initial_size": 10, "batch_size": 10, "cycles": results // 10 - 1})
    store.save_pool([(pid, i + 1, smi, can, None) for i, (pid, smi, can) in
                     enumerate(zip(df["id"], df["smiles"], df["canonical"]))], [])
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(df), size=results, replace=False)
    for cycle in range(results // 10):
        ids = [df["id"].iloc[i] for i in picks[cycle * 10:(cycle + 1) * 10]]
        n = rng.uniform(1.35, 1.75, 10)
        v = 20 + 70 * (1.75 - n) / 0.4 + rng.normal(0, 5, 10)
        mean = None if cycle == 0 else [[float(a + rng.normal(0, 0.02)), float(b + rng.normal(0, 4))]
                                         for a, b in zip(n, v)]
        std = None if cycle == 0 else [[0.02, 4.0]] * 10
        job_ids = store.record_selection(cycle, ids, "random (initial design)" if cycle == 0 else "qlognehvi-greedy",
                                         [None] * 10 if cycle == 0 else list(rng.uniform(0, 1, 10)), mean, std,
                                         cycle * 10, job_dir_for=lambda j, p: f"/scratch/runs/report-size/jobs/{j:05d}")
        for k, (job_id, pid) in enumerate(zip(job_ids, ids)):
            if k == 9 and cycle % 5 == 4:
                store.fail_job(job_id, "not_equilibrated", "record", "RadonPy's equilibrium check failed")
                continue
            record = {"refractive_index": float(n[k]), "abbe_number": float(v[k]), "density": 1.1, "preset": "quick",
                      "started_at": time.time() - 3000}
            store.finish_job(job_id, pid, record, {"refractive_index": float(n[k]), "abbe_number": float(v[k])})


def open_in_chromium(path: Path, screenshot: Path | None) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_context(viewport={"width": 900, "height": 760}, offline=True).new_page()
        t0 = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                               "Object.keys(Bokeh.index).length > 0")
        seconds = time.perf_counter() - t0
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=REPO / "pools" / "default.parquet")
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=REPO / "runs" / "benchmarks" / "report")
    parser.add_argument("--screenshot", type=Path, help="also write a PNG of the page's first screen")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    store = Store(args.dir / "campaign.sqlite")
    fill(store, args.pool, args.results)
    t0 = time.perf_counter()
    out = write_report(store, "report-size", args.dir / "report.html")
    write_s = time.perf_counter() - t0
    mb = out.stat().st_size / 1e6
    open_s = open_in_chromium(out, args.screenshot) if shutil.which("chromium") else None
    print(f"{args.results} results on {args.pool.name}: {mb:.2f} MB, written in {write_s:.1f} s, "
          f"drawn by headless Chromium in {open_s if open_s is None else round(open_s, 2)} s")
    print(json.dumps({"results": args.results, "pool": args.pool.name, "megabytes": round(mb, 2),
                      "write_seconds": round(write_s, 2), "chromium_seconds": open_s and round(open_s, 2)}))


if __name__ == "__main__":
    main()
