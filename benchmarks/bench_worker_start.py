"""Worker start-up with all isolation on: spawn, confine (user+network namespace, Landlock,
rlimits, pids cgroup as root), load a context, answer init. Must stay under 1.5 s.

    python benchmarks/bench_worker_start.py [--runs 10] [--context-mb 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import WorkerProcess
from rlm_cli.worker.protocol import LlmRequest

BUDGET_S = 1.5


async def _no_llm(request: LlmRequest) -> list[dict[str, str]]:
    return []


async def one_start(scratch: Path, handoff: Handoff) -> tuple[float, float, dict[str, str]]:
    worker = WorkerProcess(handoff, scratch)
    started = time.perf_counter()
    try:
        await worker.start()
        ready = time.perf_counter() - started
        await worker.execute(1, "len(context)", timeout=30, max_output_chars=100, on_llm=_no_llm)
        first_cell = time.perf_counter() - started
        return ready, first_cell, worker.isolation
    finally:
        await worker.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--context-mb", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        scratch = Path(tmp)
        line = "2026-11-21T09:00:00 worker-7 INFO handled request id=3f2a\n"
        text = line * int(args.context_mb * 1_000_000 / len(line))
        handoff = Handoff.of({"app.log": text})
        results = [asyncio.run(one_start(scratch, handoff)) for _ in range(args.runs)]
    ready = [r[0] for r in results]
    first = [r[1] for r in results]
    for name, value in results[0][2].items():
        print(f"isolation {name:9} {value}")
    print(f"runs {args.runs}, context {args.context_mb:g} MB")
    print(f"start to init_reply : median {statistics.median(ready) * 1000:6.0f} ms  max {max(ready) * 1000:6.0f} ms")
    print(f"start to first cell : median {statistics.median(first) * 1000:6.0f} ms  max {max(first) * 1000:6.0f} ms")
    ok = max(first) < BUDGET_S
    print(f"budget {BUDGET_S} s: {'ok' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
