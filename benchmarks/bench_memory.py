"""Peak memory of a run over a big input: the host (the `rlm` process) and its worker.

Generates a log of the given size, runs the real CLI over it, once from stdin and once as a
named file, against the scripted server (one cell reads `len(context)`, the next answers), and
prints each process's peak resident set (VmHWM) against the input size. The issue's goal is a
host at most 3x the input.

    python benchmarks/bench_memory.py [--size 200M] [--mode both|stdin|file]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

from rlm_cli.worker.sandbox import descendants  # noqa: E402

UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
LINE = "2026-11-21T09:00:00 worker-17 INFO handled request id=3f2a9c in 12 ms\n"


def parse_size(text: str) -> int:
    text = text.strip().lower().rstrip("ib")
    return int(float(text[:-1]) * UNITS[text[-1]]) if text[-1] in UNITS else int(text)


def peak_rss(pid: int) -> int:
    """The process's peak resident set in bytes (VmHWM), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"rlm_cli.worker" in f.read()
    except OSError:
        return False


def generate(path: Path, size: int) -> None:
    block = LINE * (1 << 14)
    with open(path, "w") as f:
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
        f.write(LINE * ((size - written) // len(LINE)))


def one_run(path: Path, mode: str) -> dict[str, float]:
    peaks: dict[str, float] = {}
    holder: dict[str, int] = {}

    def measure(messages: list[dict]) -> str:
        # Served while the host waits for this reply: both processes are alive and past their peak.
        host = holder["pid"]
        peaks["host"] = peak_rss(host)
        peaks["worker"] = max((peak_rss(p) for p in descendants(host) if is_worker(p)), default=0)
        return "```repl\nFINAL(str(n))\n```"

    server = ScriptedServer(["```repl\nn = len(context)\nprint(n)\n```", measure]).start()
    source = "-" if mode == "stdin" else str(path)
    args = [sys.executable, "-m", "rlm_cli", "ask", source, "How many characters?", *server.cli_args(), "-q"]
    started = time.monotonic()
    with open(path, "rb") if mode == "stdin" else open("/dev/null", "rb") as stdin:
        proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        holder["pid"] = proc.pid
        out, err = proc.communicate()
    peaks["duration_s"] = time.monotonic() - started
    server.stop()
    if proc.returncode != 0:
        sys.exit(f"rlm exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    peaks["chars"] = int(out.decode().strip())
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="200M", help="input size, e.g. 200M or 1G")
    parser.add_argument("--mode", choices=["both", "stdin", "file"], default="both")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="rlm-bench-memory-") as tmp:
        path = Path(tmp) / "big.log"
        generate(path, size)
        actual = path.stat().st_size
        print(f"input {actual:,} bytes ({actual / (1 << 20):,.0f} MiB)")
        for mode in ("stdin", "file") if args.mode == "both" else (args.mode,):
            peaks = one_run(path, mode)
            host, worker = peaks["host"], peaks["worker"]
            print(
                f"{mode:5}  host peak {host / (1 << 20):7,.0f} MiB ({host / actual:4.2f}x)"
                f"  worker peak {worker / (1 << 20):7,.0f} MiB ({worker / actual:4.2f}x)"
                f"  {peaks['duration_s']:6.1f} s  context {int(peaks['chars']):,} chars"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
