"""What keeping the REPL state costs a run: the worker's snapshot at run end and the restore at the
next run's start, through a real (confined) worker, for namespaces of a few sizes.

A run takes one snapshot, at its end (an answer, a limit, Ctrl-C), so the per-turn cost is nil;
this measures that one snapshot and the restore a follow-up pays, with the state file in a
temporary directory as the runs directory would hold it.

    python benchmarks/bench_state.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from rlm_cli.runs.state import MAX_STATE_BYTES, MAX_VARIABLE_BYTES
from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import WorkerProcess
from rlm_cli.worker.protocol import LlmRequest, RestoreRequest, StateRequest

CASES = {
    "a few small variables": "counts = {'error': 12, 'warn': 3}\nlines = ['x'] * 100\nanswer = 'forty-two'",
    "a 100,000-entry dict": "index = {f'key{i}': i for i in range(100_000)}",
    "10 MB of strings": "chunks = [f'{i:>1000}' for i in range(10_000)]",
    "40 MB in 4 variables": "\n".join(f"blob{i} = b'z' * 10_000_000" for i in range(4)),
}


async def _no_llm(request: LlmRequest) -> list[dict[str, str]]:
    return []


async def one(scratch: Path, state_dir: Path, code: str) -> tuple[float, float, int]:
    """Seconds to snapshot after `code`, seconds to restore into a fresh worker, bytes written."""
    out_fd, out_path = tempfile.mkstemp(dir=state_dir)
    handoff = Handoff.of({"in.txt": "x\n"})
    try:
        worker = WorkerProcess(handoff, scratch, inherit=(out_fd,))
        try:
            await worker.start()
            await worker.execute(1, code, timeout=60, max_output_chars=100, on_llm=_no_llm)
            started = time.perf_counter()
            saved = await worker.save_state(StateRequest(out_fd, MAX_STATE_BYTES, MAX_VARIABLE_BYTES), 60)
            save_s = time.perf_counter() - started
        finally:
            await worker.close()
        assert saved is not None, "the worker did not save its state"
        in_fd = os.open(out_path, os.O_RDONLY)
        try:
            worker = WorkerProcess(handoff, scratch, inherit=(in_fd,))
            try:
                await worker.start()
                started = time.perf_counter()
                restored = await worker.restore_state(RestoreRequest(in_fd), 60)
                restore_s = time.perf_counter() - started
            finally:
                await worker.close()
        finally:
            os.close(in_fd)
        assert restored is not None and restored.error is None, restored
        return save_s, restore_s, saved.nbytes
    finally:
        os.close(out_fd)
        os.unlink(out_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        scratch, state_dir = Path(tmp) / "scratch", Path(tmp) / "runs"
        scratch.mkdir()
        state_dir.mkdir()
        print(f"{'namespace':24} {'state file':>12} {'snapshot (median)':>18} {'restore (median)':>17}")
        for name, code in CASES.items():
            results = [asyncio.run(one(scratch, state_dir, code)) for _ in range(args.repeat)]
            save = statistics.median(r[0] for r in results)
            restore = statistics.median(r[1] for r in results)
            print(f"{name:24} {results[0][2] / 1e6:10.2f} MB {save * 1000:15.1f} ms {restore * 1000:14.1f} ms")


if __name__ == "__main__":
    main()
