"""Per-turn overhead: what one root turn costs besides the model's own reply.

A scripted OpenAI-compatible server answers every root request at once with a cell that prints
a number; one `rlm ask` process runs `--turns` of them, then FINAL. The gap of a turn is the
time from the server finishing a root reply to the next root request arriving: parsing the
reply, the events and the trajectory, the worker round trip with the cell itself, building and
sending the next request. The first gap is left out (the first cell also waits for the worker,
which starts while the first request is out). Prints the median and 90th percentile gap, the
cell's own time in the worker (from the trajectory), and what is left: the host's bookkeeping
and the round trip.

    python benchmarks/bench_turns.py [--turns 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_server import ScriptedServer  # noqa: E402


def run_once(turns: int, work: Path) -> tuple[list[float], list[float]]:
    """One process: (gaps between root turns, cell durations in the worker), in seconds."""
    script = [f"```repl\nprint({i})\n```" for i in range(turns - 1)] + ["```repl\nFINAL('done')\n```"]
    source, trace = work / "input.txt", work / "trace.jsonl"
    source.write_text("one line\n")
    with ScriptedServer(script) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "rlm_cli", "ask", str(source), "Answer.", *server.cli_args(), "-q",
             "--max-iterations", str(turns), "--trace", str(trace)],
            capture_output=True, text=True, env={**os.environ, "RLM_CACHE_DIR": tempfile.mkdtemp(dir=work)},
        )
        roots = server.root_requests()
    if proc.returncode != 0 or proc.stdout.strip() != "done" or len(roots) != turns:
        raise SystemExit(f"run failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    gaps = [nxt.received_at - (done.finished_at or done.received_at) for done, nxt in zip(roots, roots[1:])]
    cells = [json.loads(line)["duration_s"] for line in trace.read_text().splitlines() if '"type": "cell"' in line]
    return gaps[1:], cells[1:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    gaps: list[float] = []
    cells: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-turns-") as tmp:
        for _ in range(args.repeat):
            g, c = run_once(args.turns, Path(tmp))
            gaps += g
            cells += c
    gap, cell = statistics.median(gaps), statistics.median(cells)
    p90 = statistics.quantiles(gaps, n=10)[-1]
    print(f"{args.repeat} runs of {args.turns} turns ({len(gaps)} gaps); load average {os.getloadavg()[0]:.2f}")
    print(f"gap between turns: median {gap * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms")
    print(f"  the cell in the worker: median {cell * 1000:.1f} ms")
    print(f"  host bookkeeping and worker round trip: {(gap - cell) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
