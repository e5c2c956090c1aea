"""How long a batch of sub-calls takes through the real CLI, against the ideal.

A scripted OpenAI-compatible server answers every sub-call after a fixed latency; one cell sends
N prompts with llm_query_batched at concurrency C. The ideal is ceil(N / C) x latency. Prints the
batch's wall time (the cell's duration, from the trajectory), the ideal and their ratio.

    python benchmarks/bench_subcalls.py [--calls 64] [--concurrency 16] [--latency 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_server import ScriptedServer  # noqa: E402


def run_once(calls: int, concurrency: int, latency: float, workdir: Path) -> tuple[float, int]:
    """One `rlm ask` run; returns (batch seconds, the server's peak of concurrent sub-calls)."""
    source = workdir / "input.txt"
    source.write_text("".join(f"record {i}: value {i * 7}\n" for i in range(calls)))
    code = (
        "lines = context.splitlines()\n"
        "answers = llm_query_batched([f'Echo this record: {line}' for line in lines])\n"
        "FINAL(len(answers))"
    )
    trace = workdir / "trace.jsonl"
    with ScriptedServer([f"```repl\n{code}\n```"], sub_latency=latency) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "rlm_cli", "ask", str(source), "Echo every record", *server.cli_args(),
             "--concurrency", str(concurrency), "--trace", str(trace), "-q"],
            capture_output=True, text=True, env={**os.environ, "RLM_CACHE_DIR": str(workdir / "cache")},
        )
        peak = server.max_in_flight("sub")
    if proc.returncode != 0 or proc.stdout.strip() != str(calls):
        raise SystemExit(f"run failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    cells = [json.loads(line) for line in trace.read_text().splitlines() if '"type": "cell"' in line]
    return cells[0]["duration_s"], peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ideal = math.ceil(args.calls / args.concurrency) * args.latency
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_once(args.calls, args.concurrency, args.latency, Path(tmp)) for _ in range(args.repeat)]
    times = sorted(t for t, _ in results)
    print(f"{args.calls} sub-calls, concurrency {args.concurrency}, {args.latency:g} s latency each")
    print(f"ideal:  {ideal:.2f} s  (ceil({args.calls}/{args.concurrency}) x {args.latency:g} s)")
    for t, peak in results:
        print(f"run:    {t:.2f} s  ratio {t / ideal:.2f}  peak in flight {peak}")
    print(f"median: {times[len(times) // 2]:.2f} s  ratio {times[len(times) // 2] / ideal:.2f}")


if __name__ == "__main__":
    main()
