"""How long `mlflow ui` takes to answer and how much memory it holds: defaults vs lean start.

Measured in one run, each start on a fresh SQLite store in its own temp dir (its schema
created beforehand, so the clock measures the server and not the migrations):

1. MLflow's defaults: `mlflow ui --backend-store-uri sqlite:///.../mlflow.db --port PORT`
   (4 uvicorn workers, and the job runner with its huey consumers);
2. the project's lean start, as `make ui` does it: `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`
   and `--workers 1`.

For each: seconds from starting the process until `GET /health` answers; the sum of the
resident memory (RSS, from /proc every 0.2 s) of the server and all its descendants at that
moment; and, since the first worker answers while the other workers and the job runner are
still loading, the peak once the sum stops growing (no 1% rise for 3 s, at most `--settle`
seconds after the answer) and when that was. Summed RSS counts the pages processes share
more than once; it is what `ps` and `top` add up to. The process group is killed after each
start, also on an error or Ctrl-C. Medians over `--repeats` starts of each, interleaved.

Run from the repository root (Linux only: it reads /proc):

    python -m benchmarks.ui_start [--repeats 1] [--timeout 60] [--settle 30] [--json results.json]
"""

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from benchmarks import progress

MLFLOW = Path(sys.executable).parent / "mlflow"
PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL = 0.2
RISE, QUIET = 1.01, 3.0  # memory counts as settled once it has not risen 1% for 3 s
JOBS = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
MODES = {"default": ([], None), "lean": (["--workers", "1"], "false")}  # extra args, $JOBS


def free_port() -> int:
    """A port nothing listens on now (the OS picks it for a socket bound to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss(root: int) -> tuple[int, int]:
    """Summed RSS in bytes, and count, of `root`'s process tree: its descendants by parent
    link, and anything else in its session (a child whose parent died is re-parented)."""
    procs: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, session, rss pages)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)", which may hold spaces
            procs[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[21]))
    members = {pid for pid, (_, session, _) in procs.items() if session == root}
    members.add(root)
    grew = True
    while grew:
        found = {pid for pid, (ppid, _, _) in procs.items() if ppid in members} - members
        members |= found
        grew = bool(found)
    pages = sum(procs[pid][2] for pid in members if pid in procs)
    return pages * PAGE, len(members & procs.keys())


def answers(url: str) -> bool:
    """Whether the server answers HTTP. MLflow 3.17 says OK on /health; a server without
    that route would say 404, which shows it is up just as well."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:  # refused, reset or timed out: not listening yet
        return False


def launch(
    command: list[str], cwd: str | Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen:
    """Start a server with its output in `log_path`, in a process group of its own, so that
    `stop` kills it whole (`mlflow` runs its uvicorn worker as a child) and a Ctrl-C at the
    terminal spares it."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group, SIGKILL whatever is left after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def start_once(mode: str, timeout: float, settle: float) -> dict[str, Any]:
    """Start the server in `mode`; sample its tree until it answers and its memory settles."""
    extra, jobs = MODES[mode]
    env = {k: v for k, v in os.environ.items() if k != JOBS}
    if jobs is not None:
        env[JOBS] = jobs
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        mlflow.MlflowClient(uri).search_experiments()  # creates the schema
        port = free_port()
        command = [str(MLFLOW), "ui", "--backend-store-uri", uri, "--port", str(port), *extra]
        log_path = Path(tmp) / "server.log"
        start = time.perf_counter()
        proc = launch(command, tmp, env, log_path)
        try:
            answered, at_answer, peak, level, rose, processes = None, 0, 0, 0, 0.0, 0
            while True:
                now = time.perf_counter() - start
                rss, count = tree_rss(proc.pid)
                peak, processes = max(peak, rss), max(processes, count)
                if rss > level * RISE:
                    level, rose = rss, now
                if answered is None and answers(f"http://127.0.0.1:{port}/health"):
                    answered, at_answer = time.perf_counter() - start, rss
                if answered is not None and (now - rose >= QUIET or now - answered >= settle):
                    break
                if proc.poll() is not None:
                    why = f"exited with {proc.returncode}"
                elif answered is None and now > timeout:
                    why = f"no answer in {timeout:g} s"
                else:
                    time.sleep(INTERVAL)
                    continue
                sys.exit(f"{mode}: {' '.join(command)}: {why}\n{log_path.read_text()[-3000:]}")
        finally:
            stop(proc)
    return {
        "seconds": answered,
        "MB_at_answer": at_answer / 2**20,
        "settled_s": rose,
        "peak_MB": peak / 2**20,
        "processes": processes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="starts of each mode")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for an answer")
    parser.add_argument("--settle", type=float, default=30, help="most seconds to sample after it")
    parser.add_argument("--json", help="also write every number to this JSON file")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables" each time

    starts: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            progress(f"{mode} start {repeat + 1}/{args.repeats}")
            starts[mode].append(start_once(mode, args.timeout, args.settle))
    rows = [
        {"mode": mode, "extra_args": " ".join(MODES[mode][0]) or "-"}
        | {"job_execution": MODES[mode][1] or "default (true)"}
        | {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for mode, runs in starts.items()
    ]
    default, lean = rows
    ratios = {key: default[key] / lean[key] for key in ("seconds", "MB_at_answer", "peak_MB")}

    header = (
        f"mlflow {mlflow.__version__} ui, SQLite store, median of {args.repeats} start(s); "
        f"job_execution is ${JOBS}"
    )
    print(header)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(
        f"default / lean: {ratios['seconds']:.1f}x the time to answer, "
        f"{ratios['MB_at_answer']:.1f}x the memory then, {ratios['peak_MB']:.1f}x the peak memory"
    )
    if args.json:
        results = {"header": header, "args": vars(args), "rows": rows, "ratios": ratios}
        with open(args.json, "w") as fh:
            json.dump(results | {"starts": starts}, fh, indent=2)


if __name__ == "__main__":
    main()
