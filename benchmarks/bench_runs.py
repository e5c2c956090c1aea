"""How long listing runs takes at 1,000 trajectories: without the index, with it, after one new run.

Writes N synthetic trajectories (each with S sub-calls, so a file is a few hundred KB like a real
run with a batch or two) into a temporary runs directory and times `list_runs` three ways, plus
the whole `rlm runs` command (process start included) when the CLI has it.

    python benchmarks/bench_runs.py [--runs 1000] [--subcalls 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from trajectories import write_run  # noqa: E402

from rlm_cli.runs.index import INDEX_NAME  # noqa: E402
from rlm_cli.runs.store import list_runs  # noqa: E402


def best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--subcalls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        runs = root / "runs"
        runs.mkdir()
        template = write_run(root / "template.jsonl", turns=6, subcalls=args.subcalls)
        for i in range(args.runs):
            shutil.copyfile(template, runs / f"run-{i:05d}.jsonl")
        size = template.stat().st_size
        print(f"{args.runs} runs of {size / 1024:.0f} KB ({args.subcalls} sub-calls each)")

        def cold() -> None:
            (runs / INDEX_NAME).unlink(missing_ok=True)
            list_runs(runs)

        print(f"list without an index (scan, then write it): {best(args.repeat, cold) * 1000:8.1f} ms")
        list_runs(runs)
        print(f"list with a current index:                    {best(args.repeat, lambda: list_runs(runs)) * 1000:8.1f} ms")

        def one_new() -> None:
            shutil.copyfile(template, runs / f"new-{time.monotonic_ns()}.jsonl")
            list_runs(runs)

        print(f"list after one new run:                       {best(args.repeat, one_new) * 1000:8.1f} ms")

        env = {**os.environ, "RLM_CACHE_DIR": str(root)}
        probe = subprocess.run([sys.executable, "-m", "rlm_cli", "runs", "--help"], capture_output=True, env=env)
        if probe.returncode == 0:
            cli = best(args.repeat, lambda: subprocess.run([sys.executable, "-m", "rlm_cli", "runs", "-n", "20"],
                                                           capture_output=True, env=env, check=True))
            print(f"`rlm runs -n 20`, whole process:              {cli * 1000:8.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
