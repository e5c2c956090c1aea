"""Summarise `rlm bench --output DIR` results against issue 10's targets, tuned and untuned seeds apart.

Reads every `DIR/results/*.json` given (no model call), groups them by family, size, method and
seed group (`--tuned` seeds, all others untuned), and prints: the mean score per group; for
`oolong` counts also the mean relative count error |answer - gold| / gold and the slowest task;
for `code` the find-a-definition share; and the gap between `rlm` (or `auto`) and `direct`.

    python benchmarks/bench_quality.py --tuned 1 bench-out-s1 bench-out-s2 ... [--plot docs/bench.png]

`--plot FILE` draws all the results given in one plot (score against input length per method).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from rlm_cli.bench.plot import plot
from rlm_cli.bench.report import Row
from rlm_cli.bench.scoring import first_number
from rlm_cli.bench.tasks import size_label


def load(directories: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for d in directories for p in sorted((d / "results").glob("*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--tuned", default="1", help="comma-separated seeds the prompts were tuned on")
    parser.add_argument("--plot", type=Path, help="write one plot of every result here")
    args = parser.parse_args()
    tuned = {int(s) for s in args.tuned.split(",")}
    results = load(args.dirs)
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        t = r["task"]
        group = "tuned" if t["seed"] in tuned else "untuned"
        groups[(group, t["family"], t["size"], r["method"])].append(r)
    print(f"{'seeds':8} {'family':16} {'size':>5} {'method':8} {'n':>3} {'score':>6} {'med s':>7} {'max s':>7}  notes")
    for (group, family, size, method), rows in sorted(groups.items()):
        scores = [r["score"] for r in rows]
        seconds = [r["seconds"] for r in rows]
        notes = []
        counts = [r for r in rows if r["task"]["rule"] == "oolong"]
        if counts:
            errors = []
            for r in counts:
                value = first_number(r["answer"] or "")
                gold = float(r["task"]["gold"])
                errors.append(1.0 if value is None else abs(value - gold) / gold)
            notes.append(f"count rel. error {statistics.fmean(errors):.0%} over {len(errors)}")
        kinds = [r for r in rows if r["task"]["meta"].get("kind") == "definition"]
        if kinds:
            notes.append(f"find-a-definition {statistics.fmean(r['score'] for r in kinds):.0%} of {len(kinds)}")
        errors = sum(r["status"] == "error" for r in rows)
        if errors:
            notes.append(f"{errors} error(s)")
        print(f"{group:8} {family:16} {size_label(size):>5} {method:8} {len(rows):>3} {statistics.fmean(scores):6.2f} "
              f"{statistics.median(seconds):7.1f} {max(seconds):7.1f}  {'; '.join(notes)}")


    if args.plot:
        print(f"plot: {plot(rows_of(results), args.plot, 'rlm bench, local Qwen2.5-Coder-1.5B')}")


def rows_of(results: list[dict[str, Any]]) -> list[Row]:
    """Report rows (family x size x method, every seed together) from results files."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["task"]["family"], r["task"]["size"], r["method"])].append(r)
    return [Row(family, size, method, len(rows), statistics.fmean(r["score"] for r in rows),
                statistics.median(r["seconds"] for r in rows), max(r["seconds"] for r in rows),
                round(statistics.fmean(r["input_tokens"] + r["output_tokens"] for r in rows)), None,
                sum(r["status"] == "error" for r in rows), round(statistics.fmean(r["task"]["chars"] for r in rows)))
            for (family, size, method), rows in sorted(groups.items())]


if __name__ == "__main__":
    main()
