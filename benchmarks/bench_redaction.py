"""What secret redaction costs next to loading, on a large real source tree (default: litellm's).

    python benchmarks/bench_redaction.py [--source DIR] [--processes N] [--repeat R] [--verify N]

Prints, for the tree loaded exactly as `rlm ask` loads it:
- load: `load_sources` (walk, ignore rules, read, decode);
- gate: the Hyperscan pass alone (the floor of a cold scan);
- cold: `redact` with an empty cache, on one process and on N;
- warm: `redact` again with the cache filled (what every later run over the same tree pays);
- each as a fraction of load time (the goal is under 25%), and what was found, by kind;
- with --verify N: checks N files (the largest first) line by line with every plugin, and
  says whether the gate lost any finding there (it must not).

Timings are the minimum over --repeat runs: this measures the code, not the neighbours.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rlm_cli.codegraph.build import available_cores
from rlm_cli.redaction import redact
from rlm_cli.redaction.detectors import gated_lines, scan_text
from rlm_cli.sources import load_sources

T = TypeVar("T")


def default_source() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.origin:
        raise SystemExit("litellm is not installed: pass --source DIR")
    return Path(spec.origin).parent


def best_of(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--processes", type=int, default=available_cores())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--verify", type=int, default=0, metavar="N")
    args = parser.parse_args()
    source = args.source or default_source()

    load_s, loaded = best_of(args.repeat, lambda: load_sources([str(source)]))
    files = loaded.files
    chars = sum(map(len, files.values()))
    gated_lines("warm up: compile the database")
    gate_s, _ = best_of(args.repeat, lambda: [gated_lines(text) for text in files.values()])

    def cold(processes: int) -> float:
        def once() -> object:
            with tempfile.TemporaryDirectory() as empty:
                return redact(files, Path(empty), processes=processes)

        return best_of(args.repeat, once)[0]

    cold_1 = cold(1)
    cold_n = cold(args.processes)
    with tempfile.TemporaryDirectory() as cache:
        result = redact(files, Path(cache), processes=args.processes)
        warm_s, warm = best_of(args.repeat, lambda: redact(files, Path(cache), processes=args.processes))
    assert warm.scanned == 0 and warm.findings == result.findings

    print(f"source: {source}")
    print(f"files: {len(files):,}, {chars / 1e6:.1f} M characters, {args.processes} process(es)")
    print(f"load:                  {load_s:7.3f} s")
    for name, seconds in (
        ("gate (Hyperscan pass)", gate_s),
        ("cold, 1 process", cold_1),
        (f"cold, {args.processes} processes", cold_n),
        ("warm (cached)", warm_s),
    ):
        print(f"{name:22} {seconds:7.3f} s  {100 * seconds / load_s:6.0f}% of load")
    kinds = Counter(finding.kind for finding in result.findings)
    print(f"found: {result.summary()}")
    print("by kind: " + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common()))

    if args.verify:
        sample = sorted(files.items(), key=lambda item: -len(item[1]))[: args.verify]
        lost = [path for path, text in sample if set(scan_text(path, text)) < set(scan_text(path, text, gate=False))]
        print(f"verify: {len(sample)} files checked line by line, {len(lost)} with a finding the gate lost {lost[:5]}")


if __name__ == "__main__":
    main()
