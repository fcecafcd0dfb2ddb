"""The campaign's report kept current while it runs (``runs/NAME/report.html``), without slowing the driver.

After each stored outcome the driver starts ``workflow report NAME --live S`` as a separate process
(argv, no shell) unless one is already writing; an outcome that arrives meanwhile is picked up by the
next one. The report process reads the store read-only (SQLite's WAL: a reader never blocks the
writer), writes the page through a temporary file and a rename (a browser never sees half a page),
and the page reloads itself every ``S`` seconds. When the campaign ends the driver writes the final
page, which no longer reloads.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


class LiveReport:
    """Rewrites ``runs/NAME/report.html`` in a child process after each outcome (at most one at a time)."""

    def __init__(self, name: str, runs_dir: Path, reload_s: float):
        self.name, self.runs_dir, self.reload_s = name, Path(runs_dir), reload_s
        self.proc: subprocess.Popen | None = None
        self.pending = False

    def _argv(self, live: bool) -> list[str]:
        argv = [sys.executable, "-m", "workflow.cli", "report", self.name, "--runs", str(self.runs_dir)]
        return argv + (["--live", f"{self.reload_s:g}"] if live else [])

    def _reap(self) -> bool:
        """True when no report process is running (a finished one's failure is logged)."""
        if self.proc is None:
            return True
        code = self.proc.poll()
        if code is None:
            return False
        if code != 0:
            log.warning(f"live report: `workflow report {self.name}` exited with code {code}")
        self.proc = None
        return True

    def changed(self) -> None:
        """A result or failure was stored: start a rewrite, or mark one due."""
        self.pending = True
        self.tick()

    def tick(self) -> None:
        """Start the due rewrite once the previous one has finished (the driver calls this while it waits)."""
        if self.pending and self._reap():
            self.pending = False
            self.proc = subprocess.Popen(self._argv(live=True), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self, final: bool) -> None:
        """Wait for a running rewrite; with ``final`` write the last page (no reload) in the foreground."""
        if self.proc is not None:
            self.proc.wait()
            self._reap()
        if final:
            done = subprocess.run(self._argv(live=False), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                log.warning(f"report: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
