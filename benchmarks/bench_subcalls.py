"""How long a batch of sub-calls takes through the real CLI, against the ideal.

A scripted OpenAI-compatible server answers every sub-call after a fixed latency; one cell sends
N prompts with llm_query_batched, with rlm's default options (or `--concurrency C`). With
`--cap K` the server answers 429 to a sub-call arriving while K are being served, as a provider's
concurrency limit does. The ideal is ceil(N / K) x latency (K: the cap, else the 128 rlm may
reach by default). Each run has a fresh cache directory, so the cross-run cache answers nothing.

Prints, per run and as medians: the batch as the cell sees it (its duration in the trajectory),
the sub-calls' span on the server (first arrival to last reply), what lies between the two (the
worker <-> host hand-over, the cache and the limiter's ramp), the most in flight, the 429s, and
the sub-calls that failed (there must be none).

    python benchmarks/bench_subcalls.py [--calls 64] [--latency 0.5] [--cap 8] [--concurrency C] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

DEFAULT_CEILING = 128  # --max-concurrency's default


@dataclass
class Batch:
    cell: float  # the cell's duration, as the worker measured it
    span: float  # first sub-call arriving at the server to the last one answered
    peak: int
    refused: int  # 429s
    failed: int  # sub-calls whose answer was an error


def run_once(args: argparse.Namespace, work: Path) -> Batch:
    source, trace = work / "input.txt", work / "trace.jsonl"
    source.write_text("".join(f"record {i}: value {i * 7}\n" for i in range(args.calls)))
    code = (
        "answers = llm_query_batched([f'Echo this record: {line}' for line in context.splitlines()])\n"
        "FINAL(len(answers))"
    )
    options = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    with ScriptedServer([f"```repl\n{code}\n```"], sub_latency=args.latency, max_sub_in_flight=args.cap) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "rlm_cli", "ask", str(source), "Echo every record", *server.cli_args(),
             *options, "--trace", str(trace), "-q"],
            capture_output=True, text=True, env={**os.environ, "RLM_CACHE_DIR": tempfile.mkdtemp(dir=work)},
        )
        subs = [r for r in server.sub_requests() if r.status == 200]
        peak, refused = server.max_in_flight("sub"), server.rejected()
    if proc.returncode != 0 or proc.stdout.strip() != str(args.calls) or len(subs) != args.calls:
        raise SystemExit(f"run failed (exit {proc.returncode}, {len(subs)} sub-calls answered): {proc.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    cell = next(r for r in records if r["type"] == "cell")["duration_s"]
    failed = sum(1 for r in records if r["type"] == "subcall" and r["error"])
    span = max(r.finished_at or 0.0 for r in subs) - min(r.received_at for r in subs)
    return Batch(cell, span, peak, refused, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--cap", type=int, default=None, help="the server refuses (429) above this many in flight")
    parser.add_argument("--concurrency", type=int, default=None, help="rlm's --concurrency (default: rlm's own)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ideal = math.ceil(args.calls / min(args.cap or DEFAULT_CEILING, DEFAULT_CEILING)) * args.latency
    with tempfile.TemporaryDirectory(prefix="bench-subcalls-") as tmp:
        batches = [run_once(args, Path(tmp)) for _ in range(args.repeat)]
    cap = f", server cap {args.cap} (429 above it)" if args.cap else ""
    print(f"{args.calls} sub-calls of {args.latency:g} s{cap}; ideal {ideal:.2f} s; load average {os.getloadavg()[0]:.2f}")
    for b in batches:
        print(f"run:    cell {b.cell:.3f} s ({b.cell / ideal:.2f}x)  span {b.span:.3f} s ({b.span / ideal:.2f}x)"
              f"  cell - span {(b.cell - b.span) * 1000:.0f} ms  peak {b.peak}  429s {b.refused}  failed {b.failed}")
    cell, span = statistics.median(b.cell for b in batches), statistics.median(b.span for b in batches)
    print(f"median: cell {cell:.3f} s ({cell / ideal:.2f}x)  span {span:.3f} s ({span / ideal:.2f}x)"
          f"  cell - span {(cell - span) * 1000:.0f} ms  failed {sum(b.failed for b in batches)}")


if __name__ == "__main__":
    main()
