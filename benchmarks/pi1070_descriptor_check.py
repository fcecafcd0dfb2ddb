"""PolyScout's descriptor against RadonPy's own cyclic 10-mer, row by row over PI1070.

    python benchmarks/pi1070_descriptor_check.py [--data PATH] [--timeout 30] [--workers 2] [--limit N]
                                                 [--results FILE.jsonl]

For every row, RadonPy's path (``make_cyclicpolymer(n=10)``, ``ff_assign(charge="gasteiger")``,
``ff_kernel_mean``) runs in its own process, killed after ``--timeout`` seconds (it never ends for fused
aromatic backbones); PolyScout's (:func:`surrogate.descriptor.ff_kernel_mean`) runs beside it. Prints the
rows that differ (largest absolute difference over the 170 numbers) and those RadonPy did not finish, then
one JSON line: ``n``, ``equal`` (max difference < 1e-9), ``differ``, ``radonpy_unfinished``, their ids.
With ``--results`` every row's outcome is appended to the file as it finishes, and a second call skips the
rows already there (the check over all rows takes longer than one sitting on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._pi1070 import ID_COLUMN, data_argument, load_table  # noqa: E402


def radonpy_cyclic10(smiles: str, conn) -> None:
    from radonpy.core import const, poly
    from radonpy.ff.descriptor import FF_descriptor
    from radonpy.ff.gaff2_mod import GAFF2_mod

    from surrogate.descriptor import SETTINGS

    const.print_level = 2
    try:
        desc = FF_descriptor(GAFF2_mod(), polar=False, nk=SETTINGS["nk"], s=SETTINGS["s"])
        mol = poly.make_cyclicpolymer(smiles, n=10, return_mol=True)
        ok = mol is not None and desc.ff.ff_assign(mol, charge="gasteiger")
        conn.send(np.asarray(desc.ff_kernel_mean([mol])) if ok else "RadonPy could not type it")
    except Exception as exc:  # RadonPy raises bare Exceptions
        conn.send(f"{type(exc).__name__}: {exc}")


def read_done(results: Path | None) -> dict[str, dict]:
    """The rows an earlier run checked (its JSON lines), by id."""
    done = {}
    if results and results.exists():
        for line in results.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["id"]] = row
    return done


def compare_with_radonpy(ids: list[str], smiles: list[str], ours: np.ndarray, todo: list[int], workers: int,
                         timeout: float, results: Path | None) -> list[dict]:
    """RadonPy's cyclic 10-mer descriptor of each row in ``todo`` (one process each, ``workers`` at a time, killed
    after ``timeout`` s) against ours (n x 170); one outcome row per polymer, appended to ``results`` as it comes."""
    ctx = mp.get_context("fork")
    todo, running, rows = list(todo), {}, []
    while todo or running:
        while todo and len(running) < workers:
            i = todo.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=radonpy_cyclic10, args=(smiles[i], child), daemon=True)
            proc.start()
            running[i] = (proc, parent, time.monotonic())
        time.sleep(0.05)
        for i, (proc, conn, start) in list(running.items()):
            if conn.poll():
                truth = conn.recv()
            elif time.monotonic() - start > timeout or not proc.is_alive():
                truth = f"not finished within {timeout:g} s" if proc.is_alive() else "RadonPy's process died"
            else:
                continue
            proc.kill()
            proc.join()
            del running[i]
            if isinstance(truth, str):
                row = {"id": ids[i], "outcome": "unfinished", "why": truth}
            else:
                d = float(np.max(np.abs(ours[i] - truth))) if np.all(np.isfinite(ours[i])) else float("inf")
                row = {"id": ids[i], "outcome": "equal" if d < 1e-9 else "differ", "max_difference": d}
            rows.append(row)
            if results:
                with results.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_argument(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds RadonPy gets per row")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--results", type=Path, help="JSON lines, one per row checked; rows there are skipped")
    args = parser.parse_args()
    from surrogate.descriptor import featurize

    table = load_table(args.data)
    if args.limit:
        table = table.head(args.limit)
    ids, smiles = table[ID_COLUMN].astype(str).tolist(), table["smiles"].tolist()
    done = read_done(args.results)
    t0 = time.perf_counter()
    ours = featurize(smiles, cache_path=None, workers=args.workers).X
    print(f"PolyScout: {len(smiles)} rows in {time.perf_counter() - t0:.1f} s", flush=True)

    todo = [i for i in range(len(smiles)) if ids[i] not in done]
    rows = [r for pid, r in done.items() if pid in ids]
    rows += compare_with_radonpy(ids, smiles, ours, todo, args.workers, args.timeout, args.results)
    equal = [r["id"] for r in rows if r["outcome"] == "equal"]
    differ = {r["id"]: r["max_difference"] for r in rows if r["outcome"] == "differ"}
    unfinished = {r["id"]: r["why"] for r in rows if r["outcome"] == "unfinished"}
    for pid, d in differ.items():
        print(f"{pid}: differs by {d:.3g}")
    for pid, why in unfinished.items():
        print(f"{pid}: RadonPy's 10-mer: {why}")
    print(f"{len(smiles)} rows: {len(equal)} equal to 1e-9, {len(differ)} differ, {len(unfinished)} not computed "
          f"by RadonPy within {args.timeout:g} s ({time.perf_counter() - t0:.0f} s in all)")
    print(json.dumps({"n": len(smiles), "equal": len(equal), "differ": differ, "radonpy_unfinished": sorted(unfinished),
                      "timeout_s": args.timeout}))


if __name__ == "__main__":
    main()
