"""LAMMPS throughput of the property job's own NPT sampling input, plain against the accelerated choices.

For a polystyrene cell of ~1,000 and ~3,000 atoms (RadonPy chains, Gasteiger charges, packed by the
job's packing segment), the job's sampling input (``eq3.in``: PPPM at the preset's accuracy,
SHAKE, 1 fs, NPT at 300 K) runs the same number of steps from the same packed state with each
LAMMPS command (the profile's ``lammps_args`` / ``omp_threads``), side by side: steps/s and ns/day
from LAMMPS' own "Performance" line, and the density at the end (the physics unchanged: the runs
start from the same state and differ only by round-off). Ends with one JSON line.

    python benchmarks/md_speed.py [--atoms 1000,3000] [--steps 2000] [--cores 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.job import md as mdmod  # noqa: E402
from workflow.job.md import LammpsCommand  # noqa: E402
from workflow.job.presets import FULL  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PS = "*C(C*)c1ccccc1"
CHOICES = {  # name -> (LAMMPS arguments, OpenMP threads per rank)
    "plain": ((), 1),
    "omp": (("-sf", "omp", "-pk", "omp", "1"), 1),
    "opt": (("-sf", "opt"), 1),
    "omp 1 rank x 2 threads": (("-sf", "omp", "-pk", "omp", "2"), 2),
}


def packed_cell(atoms: int, kspace: float, work: Path, cores: int) -> Path:
    """A packed polystyrene cell of ~``atoms`` atoms and the job's sampling input, in ``work``."""
    chains = 5 if atoms <= 1500 else 10
    md = FULL.md.model_copy(update={"n_chains": chains, "atoms_per_chain": atoms // chains, "kspace_accuracy": kspace,
                                    "relax_steps": 2000, "heat_steps": 5000, "compress_steps": 20000})
    monomer = mdmod.build_monomer(PS, "gasteiger", seed=1)
    cell, _, rng = mdmod.build_cell(monomer, md, "gasteiger", seed=1)
    runner = mdmod.MDRunner(work, md, cores, LammpsCommand(), cell_key=f"bench-{atoms}", rng_state=rng)
    runner.write_inputs(cell)
    packed = runner.pack(cell)
    print(f"  {cell.GetNumAtoms()} atoms packed ({runner.timings.get('packing', 0):.0f} s)", flush=True)
    return packed


def run_choice(work: Path, packed: Path, steps: int, cores: int, name: str) -> dict:
    args, threads = CHOICES[name]
    tag = re.sub(r"\W+", "_", name)
    text = (work / "eq3.in").read_text()
    text = re.sub(r"^log eq3\.log append", f"log bench_{tag}.log", text, flags=re.M)
    text = re.sub(r"^read_data eq3\.data", f"read_data bench_{tag}.data", text, flags=re.M)
    text = re.sub(r"^(dump|restart|fix rg1|fix msd1).*$", "", text, flags=re.M)
    text = re.sub(r"^run \d+.*$", f"run {steps}", text, flags=re.M)
    text = text.replace("v_msd", "").split(f"run {steps}")[0] + f"run {steps}\n"
    (work / f"bench_{tag}.in").write_text(text)
    shutil.copyfile(packed, work / f"bench_{tag}.data")
    cmd = LammpsCommand(args=args, omp_threads=threads).argv(cores, f"bench_{tag}.in", f"bench_{tag}.log")
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    log = (work / f"bench_{tag}.log").read_text() if (work / f"bench_{tag}.log").is_file() else proc.stdout
    perf = re.search(r"Performance: ([\d.]+) ns/day, [\d.]+ hours/ns, ([\d.]+) timesteps/s", log)
    if proc.returncode != 0 or perf is None:
        return {"choice": name, "failed": (proc.stdout + proc.stderr)[-300:]}
    header = next(ln.split() for ln in log.splitlines() if ln.split()[:2] == ["Step", "Time"])
    rows = [ln.split() for ln in log.splitlines() if ln.split() and ln.split()[0].isdigit()
            and len(ln.split()) == len(header)]
    return {"choice": name, "steps_per_s": float(perf.group(2)), "ns_per_day": float(perf.group(1)),
            "density_end": float(rows[-1][header.index("Density")])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", default="1000,3000")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--kspace", type=float, default=1e-6, help="PPPM accuracy (full preset: 1e-6)")
    parser.add_argument("--choices", default=",".join(CHOICES))
    parser.add_argument("--dir", type=Path, default=REPO / "runs" / "benchmarks" / "md_speed")
    args = parser.parse_args()
    results = {}
    for atoms in (int(a) for a in args.atoms.split(",")):
        work = args.dir / f"ps{atoms}"
        print(f"polystyrene ~{atoms} atoms:", flush=True)
        packed = packed_cell(atoms, args.kspace, work, args.cores)
        rows = [run_choice(work, packed, args.steps, args.cores, c.strip()) for c in args.choices.split(",")]
        base = next((r["steps_per_s"] for r in rows if r["choice"] == "plain" and "steps_per_s" in r), None)
        for r in rows:
            if "failed" in r:
                print(f"  {r['choice']:<24} failed: {r['failed']}")
                continue
            r["speedup"] = round(r["steps_per_s"] / base, 2) if base else None
            print(f"  {r['choice']:<24} {r['steps_per_s']:8.1f} steps/s {r['ns_per_day']:7.3f} ns/day  "
                  f"x{r['speedup']}  density after {args.steps} steps {r['density_end']:.4f}", flush=True)
        results[str(atoms)] = rows
    print(json.dumps({"cores": args.cores, "steps": args.steps, "kspace": args.kspace, "results": results}))


if __name__ == "__main__":
    main()
