"""Descriptor speed on PI1070: cold (empty cache) and warm (second pass) featurization.

    python benchmarks/pi1070_descriptors.py [--data PATH] [--workers N]

Ends with one JSON line: ``n``, ``failed``, ``timed_out``, ``cold_s``, ``warm_s``, ``workers``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._pi1070 import data_argument, load_table  # noqa: E402
from surrogate.descriptor import featurize  # noqa: E402
from workflow.common.chem import canonical_psmiles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_argument(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--timeout", type=float, default=120.0, help="per-polymer limit, seconds")
    args = parser.parse_args()
    table = load_table(args.data)
    smiles = [canonical_psmiles(s) for s in table["smiles"]]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        t0 = time.perf_counter()
        cold = featurize(smiles, cache_path=cache, workers=args.workers, timeout_s=args.timeout)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = featurize(smiles, cache_path=cache, workers=args.workers, timeout_s=args.timeout)
        warm_s = time.perf_counter() - t0
    timed_out = sum("longer than" in r for r in cold.failures.values())
    for i, reason in sorted(cold.failures.items()):
        print(f"{table['monomer_ID'].iloc[i]}: {reason}")
    same = np.array_equal(warm.X, cold.X, equal_nan=True)
    if warm.computed or not same:
        sys.exit(f"the warm pass recomputed {warm.computed} descriptors or returned different numbers")
    print(f"{len(smiles)} polymers, {args.workers} workers: cold {cold_s:.1f} s "
          f"({len(cold.failures)} failed, {timed_out} over the time limit), warm {warm_s:.2f} s")
    print(json.dumps({"n": len(smiles), "failed": len(cold.failures), "timed_out": timed_out,
                      "cold_s": round(cold_s, 2), "warm_s": round(warm_s, 3), "workers": args.workers}))


if __name__ == "__main__":
    main()
