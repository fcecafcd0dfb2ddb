"""LAMMPS throughput of the property job's own NPT sampling input, plain against each lever.

For a polystyrene cell of ~1,000 and ~3,000 atoms (RadonPy chains, Gasteiger charges, packed by the
job's packing segment, then settled by a plain NPT run), the job's sampling input (``eq3.in``, written by
``MDRunner`` from the preset's settings: PPPM at the preset's accuracy, SHAKE, NPT at 300 K) runs the
same simulated time from the same settled state for each choice: a LAMMPS command of a profile
(``lammps_args`` / ``omp_threads``: the OPENMP and OPT suffixes) or a preset setting (the 2 fs time step,
the neighbour-list check interval). Printed per choice: steps/s and ns/day from LAMMPS' own
"Performance" line, the speed-up in ns/day over plain, and the density's mean and standard deviation
over the second half of the run (the physics unchanged: same state, same simulated time). rRESPA is
measured by ``--choices`` with ``respa``: LAMMPS' multiple time steps need a run_style line the job
does not write. Ends with one JSON line.

    python benchmarks/md_speed.py [--atoms 1000,3000] [--ps 20] [--cores 2] [--choices plain,omp,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.job import md as mdmod  # noqa: E402
from workflow.job.md import LammpsCommand  # noqa: E402
from workflow.job.md_cell import build_cell, build_monomer  # noqa: E402
from workflow.job.presets import FULL  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PS = "*C(C*)c1ccccc1"
OMP = ("-sf", "omp", "-pk", "omp", "1")
RESPA = ("run_style respa 3 2 2 bond 1 angle 1 dihedral 1 improper 1 inner 2 5.0 6.0 outer 3 kspace 3",)
CHOICES: dict[str, tuple[dict, tuple[str, ...], int, tuple[str, ...]]] = {
    # name -> (MDSettings changes, LAMMPS arguments, OpenMP threads per rank, extra input lines)
    "plain": ({}, (), 1, ()),
    "omp": ({}, OMP, 1, ()),
    "opt": ({}, ("-sf", "opt"), 1, ()),
    "omp 1 rank x 2 threads": ({}, ("-sf", "omp", "-pk", "omp", "2"), 2, ()),
    "neighbor every 2": ({"neighbor_every": 2}, (), 1, ()),
    "2 fs": ({"sampling_time_step": 2.0}, (), 1, ()),
    "2 fs + omp": ({"sampling_time_step": 2.0}, OMP, 1, ()),
    "2 fs + omp + neighbor every 2": ({"sampling_time_step": 2.0, "neighbor_every": 2}, OMP, 1, ()),
    "respa 1/2/4 fs (kspace 4 fs)": ({"sampling_time_step": 4.0}, (), 1, RESPA),
}


def packed_cell(atoms: int, kspace: float, work: Path, cores: int):
    """A packed polystyrene cell of ~``atoms`` atoms in ``work``: (RadonPy cell, its random stream, data file)."""
    chains = 5 if atoms <= 1500 else 10
    md = FULL.md.model_copy(update={"n_chains": chains, "atoms_per_chain": atoms // chains, "kspace_accuracy": kspace,
                                    "relax_steps": 2000, "heat_steps": 5000, "compress_steps": 20000})
    monomer = build_monomer(PS, "gasteiger", seed=1)
    cell, _, rng = build_cell(monomer, md, "gasteiger", seed=1)
    runner = mdmod.MDRunner(work, md, cores, LammpsCommand(), cell_key=f"bench-{atoms}", rng_state=rng)
    packed = runner.pack(cell)
    print(f"  {cell.GetNumAtoms()} atoms packed ({runner.timings.get('packing', 0):.0f} s)", flush=True)
    return cell, rng, md, packed


def sampling_input(work: Path, cell, rng, md, changes: dict, extra: tuple[str, ...], tag: str, ps: float,
                   thermo: int, start: str, end_data: str | None = None) -> tuple[str, int]:
    """The job's sampling input for ``md`` with ``changes`` (written by MDRunner), running ``ps`` ps from
    ``start``; returns (input file name, steps)."""
    settings = md.model_copy(update={**changes, "thermo_freq": thermo})
    steps = int(round(ps * 1000 / settings.sampling_time_step))
    sub = work / f"inputs_{tag}"
    shutil.rmtree(sub, ignore_errors=True)
    mdmod.MDRunner(sub, settings, 1, LammpsCommand(), rng_state=rng).write_inputs(cell)
    text = (sub / "eq3.in").read_text()
    text = re.sub(r"^log eq3\.log append", f"log bench_{tag}.log", text, flags=re.M)
    text = re.sub(r"^read_data eq3\.data", f"read_data {start}", text, flags=re.M)
    text = re.sub(r"^(dump|restart|fix rg1|fix msd1).*$", "", text, flags=re.M)
    text = re.sub(r"^(timestep .*)$", "\\1\n" + "\n".join(extra), text, count=1, flags=re.M)
    text = text.replace("v_msd", "")
    text = re.sub(r"^run \d+.*$", f"run {steps}", text, flags=re.M).split(f"run {steps}")[0] + f"run {steps}\n"
    if end_data:
        text += f"write_data {end_data}\n"
    (work / f"bench_{tag}.in").write_text(text)
    return f"bench_{tag}.in", steps


def run_lammps(work: Path, input_file: str, tag: str, cores: int, args: tuple[str, ...], threads: int):
    cmd = LammpsCommand(args=args, omp_threads=threads).argv(cores, input_file, f"bench_{tag}.log")
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    log = (work / f"bench_{tag}.log").read_text() if (work / f"bench_{tag}.log").is_file() else proc.stdout
    return proc, log


def run_choice(work: Path, cell, rng, md, start: str, ps: float, cores: int, name: str) -> dict:
    changes, args, threads, extra = CHOICES[name]
    tag = re.sub(r"\W+", "_", name)
    input_file, steps = sampling_input(work, cell, rng, md, changes, extra, tag, ps, thermo=50, start=start)
    proc, log = run_lammps(work, input_file, tag, cores, args, threads)
    perf = re.search(r"Performance: ([\d.]+) ns/day, [\d.]+ hours/ns, ([\d.]+) timesteps/s", log)
    if proc.returncode != 0 or perf is None:
        return {"choice": name, "failed": (proc.stdout + proc.stderr)[-300:]}
    header = next(ln.split() for ln in log.splitlines() if ln.split()[:2] == ["Step", "Time"])
    rows = [ln.split() for ln in log.splitlines() if ln.split() and ln.split()[0].isdigit()
            and len(ln.split()) == len(header)]
    density = np.array([float(r[header.index("Density")]) for r in rows[len(rows) // 2:]])
    return {"choice": name, "steps": steps, "steps_per_s": float(perf.group(2)), "ns_per_day": float(perf.group(1)),
            "density_mean": round(float(density.mean()), 4), "density_sd": round(float(density.std()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", default="1000,3000")
    parser.add_argument("--ps", type=float, default=20.0, help="simulated time of every choice (ps)")
    parser.add_argument("--settle-ps", type=float, default=10.0, help="plain NPT after packing, shared by all")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--kspace", type=float, default=1e-6, help="PPPM accuracy (full preset: 1e-6)")
    parser.add_argument("--choices", default=",".join(c for c in CHOICES if not c.startswith("respa")))
    parser.add_argument("--dir", type=Path, default=REPO / "runs" / "benchmarks" / "md_speed")
    args = parser.parse_args()
    results = {}
    for atoms in (int(a) for a in args.atoms.split(",")):
        work = args.dir / f"ps{atoms}"
        print(f"polystyrene ~{atoms} atoms:", flush=True)
        cell, rng, md, packed = packed_cell(atoms, args.kspace, work, args.cores)
        shutil.copyfile(packed, work / "bench_start.data")
        if not (work / "bench_settled.data").is_file():
            settle, _ = sampling_input(work, cell, rng, md, {}, (), "settle", args.settle_ps, thermo=1000,
                                       start="bench_start.data", end_data="bench_settled.data")
            proc, _ = run_lammps(work, settle, "settle", args.cores, (), 1)
            if proc.returncode != 0:
                raise SystemExit(f"settling run failed: {(proc.stdout + proc.stderr)[-300:]}")
        rows = [run_choice(work, cell, rng, md, "bench_settled.data", args.ps, args.cores, c.strip())
                for c in args.choices.split(",")]
        base = next((r["ns_per_day"] for r in rows if r["choice"] == "plain" and "ns_per_day" in r), None)
        for r in rows:
            if "failed" in r:
                print(f"  {r['choice']:<30} failed: {r['failed']}")
                continue
            r["speedup"] = round(r["ns_per_day"] / base, 2) if base else None
            print(f"  {r['choice']:<30} {r['steps_per_s']:8.1f} steps/s {r['ns_per_day']:7.2f} ns/day  x{r['speedup']}  "
                  f"density over the last {args.ps / 2:g} ps {r['density_mean']:.4f} +- {r['density_sd']:.4f}",
                  flush=True)
        results[str(atoms)] = rows
    print(json.dumps({"cores": args.cores, "ps": args.ps, "kspace": args.kspace, "results": results}))


if __name__ == "__main__":
    main()
