"""Throughput of `rlm batch`: tasks per second and peak memory, by --jobs, locally and on Ray.

A scripted OpenAI-compatible server answers every root call at once with a cell that greps the
answer and calls FINAL, so a task costs what rlm itself costs: loading, a sandboxed worker, one
root turn, the trajectory. Prints, for TASKS tasks: wall time, tasks/s and the peak RSS of the
whole process tree (the CLI, its workers and, on Ray, the cluster's processes; sampled every
0.2 s) for each --jobs, then the same batch on a local Ray head (two CPUs, one per task), and the
time per task of separate `rlm ask` processes (a sample of them, extrapolated to TASKS).

    python benchmarks/bench_batch.py [--tasks 200] [--jobs 1,2,4,8] [--separate 10] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

FIND = "```repl\nFINAL(context.grep('code is')[0].text.split()[-1])\n```"
RAY = str(Path(sys.executable).with_name("ray"))


def make_tasks(workdir: Path, count: int) -> Path:
    tasks = workdir / "tasks.jsonl"
    with open(tasks, "w") as f:
        for i in range(count):
            (workdir / f"n{i}.txt").write_text(f"alpha\nthe code is {i}\nomega\n")
            f.write(json.dumps({"id": f"t{i}", "source": f"n{i}.txt", "question": "What is the code?"}) + "\n")
    return tasks


class PeakRss:
    """The largest sum of RSS over some process trees, sampled in a thread."""

    def __init__(self, *roots: int) -> None:
        self.roots = list(roots)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for root in self.roots:
                try:
                    proc = psutil.Process(root)
                    tree = [proc, *proc.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in tree:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            self.peak = max(self.peak, total)


def run_batch(tasks: Path, count: int, extra: list[str], env: dict[str, str], also: tuple[int, ...] = ()) -> tuple[float, int]:
    """One `rlm batch` over `tasks`; returns (seconds, peak RSS bytes)."""
    out = tasks.with_name("results.jsonl")
    out.unlink(missing_ok=True)
    shutil.rmtree(tasks.with_name("results.traces"), ignore_errors=True)
    with ScriptedServer([FIND] * (count + 10)) as server:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_cli", "batch", str(tasks), "-o", str(out), "-q", *server.cli_args(), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        with PeakRss(proc.pid, *also) as rss:
            _, stderr = proc.communicate()
        seconds = time.monotonic() - started
    lines = out.read_text().splitlines() if out.exists() else []
    ok = sum(json.loads(line)["status"] == "ok" for line in lines)
    if proc.returncode != 0 or ok != count:
        raise SystemExit(f"batch failed (exit {proc.returncode}, {ok}/{count} ok): {stderr.strip()[-800:]}")
    return seconds, rss.peak


def separate(workdir: Path, sample: int, env: dict[str, str]) -> tuple[float, int]:
    """`sample` separate `rlm ask` processes, one after another; (mean seconds, peak RSS)."""
    times, peak = [], 0
    with ScriptedServer([FIND] * (sample + 5)) as server:
        for i in range(sample):
            started = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "rlm_cli", "ask", str(workdir / f"n{i}.txt"), "What is the code?", "-q", *server.cli_args()],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
            with PeakRss(proc.pid) as rss:
                stdout, stderr = proc.communicate()
            if proc.returncode != 0 or stdout.strip() != str(i):
                raise SystemExit(f"rlm ask failed (exit {proc.returncode}): {stderr.strip()[-500:]}")
            times.append(time.monotonic() - started)
            peak = max(peak, rss.peak)
    return sum(times) / len(times), peak


def start_ray(env: dict[str, str], temp: str) -> tuple[subprocess.Popen[str], str]:
    head = subprocess.Popen(
        [RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--port=0", "--num-cpus=2", "--include-dashboard=false",
         "--object-store-memory=80000000", "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    address = None
    assert head.stdout is not None
    for line in head.stdout:
        found = re.search(r"ray start --address='([^']+)'", line)
        address = found.group(1) if found else address
        if "--block" in line or head.poll() is not None:
            break
    if not address:
        raise SystemExit("ray start printed no address")
    return head, address


def stop_ray(head: subprocess.Popen[str]) -> None:
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=15)


def row(label: str, count: int, seconds: float, peak: int) -> str:
    return f"{label:<22} {seconds:8.1f} s {count / seconds:8.2f} tasks/s {peak / 1e6:9.0f} MB peak RSS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--jobs", default="1,2,4,8")
    parser.add_argument("--separate", type=int, default=10, help="separate `rlm ask` processes to time (then extrapolated)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-batch-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "RLM_CACHE_DIR": str(workdir / "cache"), "RLM_CONFIG": str(workdir / "none.toml"), "RLM_LOCAL_DEFAULT": "0"}
        tasks = make_tasks(workdir, args.tasks)
        print(f"rlm batch, {args.tasks} scripted tasks (one root turn each), {os.cpu_count()} CPUs")
        per_task: dict[str, float] = {}
        for jobs in [int(j) for j in args.jobs.split(",")]:
            seconds, peak = run_batch(tasks, args.tasks, ["--jobs", str(jobs)], env)
            per_task[f"--jobs {jobs}"] = seconds / args.tasks
            print(row(f"local --jobs {jobs}", args.tasks, seconds, peak), flush=True)
        if not args.no_ray:
            temp = tempfile.mkdtemp(prefix="rlm-bench-ray-", dir="/tmp")  # short: Ray's sockets live in it
            head, address = start_ray(env, temp)
            try:
                seconds, peak = run_batch(tasks, args.tasks, ["--ray", address, "--ray-num-cpus", "1"], env, also=(head.pid,))
                print(row("ray (2 CPUs)", args.tasks, seconds, peak), flush=True)
            finally:
                stop_ray(head)
                shutil.rmtree(temp, ignore_errors=True)
        mean, peak = separate(workdir, args.separate, env)
        print(row(f"separate rlm ask x{args.separate}", args.separate, mean * args.separate, peak))
        print(f"separate rlm ask: {mean:.2f} s per task, so {mean * args.tasks:.0f} s for {args.tasks} (extrapolated)")
        for label, seconds in per_task.items():
            print(f"batch {label}: {seconds:.2f} s per task; saves {mean - seconds:+.2f} s per task against separate processes")


if __name__ == "__main__":
    main()
