#!/usr/bin/env python3
"""A fake PBS Pro / NQSV batch system for tests: ``qsub``, ``qstat`` and ``qdel`` in one script.

Installed on PATH by tests as three one-line wrappers (``fakesched.py qsub ARGS``). State lives in the JSON file named by
``FAKE_SCHED_STATE``; ``FAKE_SCHED_FLAVOR`` is ``pbspro`` or ``nqsv``. Each ``qstat`` call reports, then moves
requests one step: NQSV ``QUE`` -> ``RUN`` (the script really starts, under bash) -> ``EXT``
once the script has ended -> gone; PBS Pro ``Q`` -> ``R`` -> ``F`` (listed with ``-x``) -> gone.
Outputs copy the real commands' formats. Fault injection through the state file:
``fail_qstat`` (that many qstat calls fail), ``fail_qsub`` (likewise for qsub).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_SCHED_STATE"])
FLAVOR = os.environ.get("FAKE_SCHED_FLAVOR", "nqsv")
STEPS = {"nqsv": ("QUE", "RUN", "EXT"), "pbspro": ("Q", "R", "F")}[FLAVOR]


def load() -> dict:
    return json.loads(STATE.read_text()) if STATE.is_file() else {"next": 640170, "jobs": {}}


def directive(script: str, flag: str) -> str | None:
    m = re.search(rf"^#PBS {re.escape(flag)}\s*(\S+)", script, re.M)
    return m.group(1) if m else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a finished child of ours that nobody reaped is a zombie: not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def qsub(args: list[str], st: dict) -> int:
    if st.get("fail_qsub", 0) > 0:
        st["fail_qsub"] -= 1
        print("qsub: Cannot connect to batch server", file=sys.stderr)
        return 1
    script = Path(args[-1])
    text = script.read_text()
    num = st["next"]
    st["next"] += 1
    queue = directive(text, "-q") or (args[args.index("-q") + 1] if "-q" in args else "workq")
    job_id = f"{num}.sqd" if FLAVOR == "nqsv" else f"{num}.pbsserver"
    st["jobs"][job_id] = {"script": str(script), "state": STEPS[0], "pid": None, "queue": queue,
                          "name": directive(text, "-N") or script.name, "stdout": directive(text, "-o"),
                          "stderr": directive(text, "-e")}
    if FLAVOR == "nqsv":
        print(f"Request {job_id} submitted to queue: {queue}.")
    else:
        print(job_id)
    return 0


def advance(st: dict) -> None:
    for job_id, job in list(st["jobs"].items()):
        if job["state"] == STEPS[0]:
            out = open(job["stdout"] or os.devnull, "w")
            err = open(job["stderr"] or os.devnull, "w")
            proc = subprocess.Popen(["bash", job["script"]], stdout=out, stderr=err, start_new_session=True,
                                    cwd=str(Path(job["script"]).parent))
            job["pid"], job["state"] = proc.pid, STEPS[1]
        elif job["state"] == STEPS[1] and not alive(job["pid"]):
            job["state"] = STEPS[2]
        elif job["state"] == STEPS[2]:
            del st["jobs"][job_id]


def qstat(args: list[str], st: dict) -> int:
    if st.get("fail_qstat", 0) > 0:
        st["fail_qstat"] -= 1
        print("qstat: Connection refused", file=sys.stderr)
        return 1
    # report the current states, then move every request one step for the next call
    wanted = [a for a in args if not a.startswith("-") and a not in ("json",)]
    jobs = {j: dict(v) for j, v in st["jobs"].items() if not wanted or j in wanted}
    advance(st)
    if FLAVOR == "pbspro":
        print(json.dumps({"pbs_version": "2022.1.0", "Jobs": {j: {"Job_Name": v["name"], "job_state": v["state"],
                                                                   "queue": v["queue"]} for j, v in jobs.items()}}))
        return 0
    print("RequestID       ReqName  UserName Queue     Pri STT S   Memory      CPU   Elapse R H M Jobs")
    print("--------------- -------- -------- -------- ---- --- - -------- -------- -------- - - - ----")
    for j, v in jobs.items():
        print(f"{j:<15} {v['name'][:8]:<8} u6b001   {v['queue'][:8]:<8}    0 {v['state']} -    0.00B     0.00"
              f"        0 Y Y Y    1")
    return 0


def qdel(args: list[str], st: dict) -> int:
    for job_id in args:
        job = st["jobs"].pop(job_id, None)
        if job is None:
            print(f"qdel: Request {job_id} does not exist", file=sys.stderr)
            return 1
        if job["pid"] and alive(job["pid"]):
            os.killpg(job["pid"], signal.SIGTERM)
        if FLAVOR == "nqsv":  # PBS Pro's qdel prints nothing
            print(f"Request {job_id} was deleted.")
    return 0


def main() -> int:
    cmd, args = sys.argv[1], sys.argv[2:]
    STATE.parent.mkdir(parents=True, exist_ok=True)
    with open(STATE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        st = load()
        rc = {"qsub": qsub, "qstat": qstat, "qdel": qdel}[cmd](args, st)
        STATE.write_text(json.dumps(st))
    return rc


if __name__ == "__main__":
    sys.exit(main())
