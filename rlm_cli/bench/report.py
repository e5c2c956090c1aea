"""Summaries of bench outcomes: one row per family x size x method, as a table or JSON."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rlm_cli.bench.runner import Outcome
from rlm_cli.bench.tasks.base import size_label


@dataclass(frozen=True)
class Row:
    family: str
    size: int
    method: str
    tasks: int
    score: float  # mean over the tasks
    median_s: float
    p90_s: float
    tokens: int  # mean input + output tokens per task
    cost_usd: float | None  # total; None when no call had a price
    errors: int  # runs that ended in an error (scored 0)
    chars: int  # mean actual input size


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def summarise(outcomes: Sequence[Outcome]) -> list[Row]:
    groups: dict[tuple[str, int, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.task.family, o.task.size, o.method)].append(o)
    rows = []
    for (family, size, method), group in groups.items():
        seconds = [o.result.seconds for o in group]
        costs = [o.result.cost_usd for o in group if o.result.cost_usd is not None]
        rows.append(Row(
            family, size, method, len(group),
            score=statistics.fmean(o.score for o in group),
            median_s=statistics.median(seconds),
            p90_s=_p90(seconds),
            tokens=round(statistics.fmean(o.result.input_tokens + o.result.output_tokens for o in group)),
            cost_usd=sum(costs) if costs else None,
            errors=sum(o.result.status == "error" for o in group),
            chars=round(statistics.fmean(o.task.chars for o in group)),
        ))
    return rows


HEADERS = ("family", "size", "method", "n", "score", "median s", "p90 s", "tokens", "cost $", "errors")


def table(rows: Sequence[Row]) -> str:
    """A plain-text table, columns aligned, in the order the rows came."""
    cells = [HEADERS] + [
        (r.family, size_label(r.size), r.method, str(r.tasks), f"{r.score:.2f}", f"{r.median_s:.1f}", f"{r.p90_s:.1f}",
         f"{r.tokens:,}", "-" if r.cost_usd is None else f"{r.cost_usd:.4f}", str(r.errors))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    right = {3, 4, 5, 6, 7, 8, 9}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    return "\n".join(lines) + "\n"


def as_json(rows: Sequence[Row], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {"summary": [asdict(r) for r in rows], "tasks": [o.as_json() for o in outcomes]}
