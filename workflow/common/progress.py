"""Progress for steps a person waits on, and library warnings summarised once per step.

One helper for both: :func:`progress` (tqdm, on stderr, silent when stderr is not a terminal, so
logs and batch output stay clean) and :func:`summarised_warnings` (Python warnings from
scikit-learn, linear_operator, pandas..., and RDKit's messages, counted and reported in one line
at the end of the step instead of one line each).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections import Counter
from typing import Callable, Iterator


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A bar for ``total`` items; yields ``advance(n)``. Nothing is drawn unless stderr is a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="polymer", file=sys.stderr, disable=not sys.stderr.isatty(),
               leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


@contextlib.contextmanager
def summarised_warnings(step: str, log: Callable[[str], None]) -> Iterator[Counter]:
    """Collect the warnings raised during ``step`` (RDKit's too) and log one summary line, most frequent first."""
    from rdkit import rdBase

    counts: Counter = Counter()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counts["RDKit: " + record.getMessage().strip().splitlines()[0][:80]] += 1

    rdkit_log, handler = logging.getLogger("rdkit"), Count()
    propagate = rdkit_log.propagate
    rdBase.LogToPythonLogger()  # RDKit's messages through Python logging, into the count
    rdkit_log.addHandler(handler)
    rdkit_log.propagate = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield counts
        finally:
            rdkit_log.removeHandler(handler)
            rdkit_log.propagate = propagate
            rdBase.LogToCppStreams()
            for w in caught:
                counts[f"{w.category.__name__}: {str(w.message).splitlines()[0][:80]}"] += 1
            if counts:
                top = "; ".join(f"{n} x {text}" for text, n in counts.most_common(3))
                more = f" (and {len(counts) - 3} other kinds)" if len(counts) > 3 else ""
                log(f"{step}: {sum(counts.values())} library warning(s): {top}{more}")
