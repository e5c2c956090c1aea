"""How long `rlm ask --dry-run` takes on a real repository, and how much of it is the code graph.

Runs the whole command (process start, loading, code graph, tokenizer, prompt, prices) on a
directory, by default this repository, with a cold and a warm code-graph cache, and prints wall
time, the code graph's build time (from the report) and the rest. The goal: the rest under 2 s.

    python benchmarks/bench_dryrun.py [PATH] [--model openai/gpt-4o-mini] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def once(path: Path, model: str, cache: Path) -> tuple[float, float, dict]:
    env = {**os.environ, "RLM_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli", "ask", str(path), "Where is the retry policy?", "--model", model, "--dry-run", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )
    wall = time.perf_counter() - started
    report = json.loads(proc.stdout)
    return wall, float((report.get("code") or {}).get("index_time_s") or 0.0), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        cache = Path(tmp)
        wall, index, report = once(args.path, args.model, cache)
        print(f"{args.path}: {len(report['files']):,} files, {report['chars']:,} chars, {report['tokens']['tokens']:,} tokens"
              f" ({report['tokens']['method']})")
        print(f"cold code-graph cache: {wall:6.2f} s wall, {index:5.2f} s code graph, {wall - index:5.2f} s the rest")
        for _ in range(args.repeat):
            wall, index, _ = once(args.path, args.model, cache)
            print(f"warm code-graph cache: {wall:6.2f} s wall, {index:5.2f} s code graph, {wall - index:5.2f} s the rest")


if __name__ == "__main__":
    main()
