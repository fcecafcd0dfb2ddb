"""One driver per campaign."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workflow.common.errors import ConfigError


class DriverLock:
    """An exclusive ``flock`` on ``runs/<name>/driver.lock``.

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
            self._fh.seek(0)
            self._fh.truncate()  # no driver named: `workflow status --watch` ends
            self._fh.close()  # closing releases the flock
            self._fh = None
