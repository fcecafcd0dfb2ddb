"""Where the driver's messages go: the terminal (as before) and ``runs/NAME/campaign.log``.

Library code logs through ``logging.getLogger(__name__)`` (loggers under ``workflow``); the command
line attaches the handlers for one command with :func:`campaign_logging`: the log file takes every
level with a timestamp, the level and the logger's name, the terminal the messages alone from
``level`` up (``--quiet``: warnings and errors, ``--verbose``: debug).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOGGER = "workflow"
FILE_ONLY = {"file_only": True}
"""``extra`` of a record for the log file alone (an error the command line also prints on stderr)."""


@contextmanager
def campaign_logging(log_file: Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Handlers on the ``workflow`` logger for one command: ``log_file`` (appended; None: none) and stdout."""
    logger = logging.getLogger(LOGGER)
    handlers: list[logging.Handler] = []
    terminal = logging.StreamHandler(sys.stdout)
    terminal.setLevel(level)
    terminal.setFormatter(logging.Formatter("%(message)s"))
    terminal.addFilter(lambda record: not getattr(record, "file_only", False))
    handlers.append(terminal)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(log_file, encoding="utf-8")
        file.setLevel(logging.DEBUG)
        file.setFormatter(logging.Formatter(FILE_FORMAT))
        handlers.append(file)
    previous = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # a host application's root handlers do not print it twice
    for h in handlers:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
