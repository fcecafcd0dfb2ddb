"""Does watching a campaign slow its driver? (issue 39: the live page and `status --watch` are read-only)

Runs the same oracle campaign (the test pool, jobs of a fixed simulated duration, one at a time) three
ways, side by side: plain; with the live report (a page rewritten in a child process after each
result); with the live report and a `workflow status --watch` refreshing every 0.5 s. Prints each
driver's wall time and its ratio to the plain run. On a 2-core machine the report process competes
with the driver for CPU: the ratio measures that too.

    python benchmarks/live_view_overhead.py [--duration 2] [--cycles 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_campaign import ORACLE, SMILES  # noqa: E402  (the pool and oracle of the test suite)


def campaign(where: Path, name: str, live: bool, duration: float, cycles: int) -> Path:
    (where / "pool.csv").write_text("id,smiles\n" + "\n".join(f"Q{i:02d},{s}" for i, s in enumerate(SMILES)))
    (where / "oracle.csv").write_text(ORACLE)
    path = where / f"{name}.yaml"
    path.write_text(f"name: {name}\npool: pool.csv\nobjectives: {{refractive_index: maximize, Cp: maximize}}\n"
                    f"initial_size: 4\nbatch_size: 3\ncycles: {cycles}\nseed: 4\n"
                    f"oracle: {{table: oracle.csv, duration_s: [{duration}, {duration}], threads: 1}}\n"
                    f"driver: {{live_report: {str(live).lower()}, poll_s: 0.5}}\n")
    return path


def run(where: Path, name: str, live: bool, watch: bool, duration: float, cycles: int) -> float:
    cli = [sys.executable, "-m", "workflow.cli"]
    path = campaign(where, name, live, duration, cycles)
    t0 = time.monotonic()
    driver = subprocess.Popen([*cli, "run", str(path), "--runs", str(where / "runs"), "--quiet"])
    watcher = None
    if watch:
        while not (where / "runs" / name / "campaign.sqlite").exists():
            time.sleep(0.05)
        watcher = subprocess.Popen([*cli, "status", name, "--runs", str(where / "runs"), "--watch", "--every", "0.5"],
                                   stdout=subprocess.DEVNULL)
    assert driver.wait() == 0
    seconds = time.monotonic() - t0
    if watcher is not None:
        watcher.wait()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per simulated job")
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        rows = [("plain", False, False), ("live report", True, False), ("live report + status --watch", True, True)]
        times = {label: run(where, f"c{i}", live, watch, args.duration, args.cycles)
                 for i, (label, live, watch) in enumerate(rows)}
    base = times["plain"]
    jobs = 4 + 3 * args.cycles
    print(f"oracle campaign, {jobs} jobs of {args.duration:g} s one at a time (ideal {jobs * args.duration:.0f} s):")
    for label, seconds in times.items():
        print(f"  {label:<32} {seconds:7.1f} s   x{seconds / base:.3f}")


if __name__ == "__main__":
    main()
