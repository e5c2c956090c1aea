"""`rlm runs` as text: one aligned row per run, plain (it is read in terminals and piped to grep)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rlm_cli.runs.summary import RunSummary

QUESTION_CHARS = 48
SOURCES_CHARS = 28
COLUMNS = ("ID", "WHEN", "STATUS", "ITER", "SUBS", "TOKENS", "COST", "TIME", "MODEL", "SOURCES", "QUESTION")
RIGHT = {"ITER", "SUBS", "TOKENS", "COST", "TIME"}


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(run: RunSummary) -> tuple[str, ...]:
    model = run.model if run.sub_model in ("", run.model) else f"{run.model} / {run.sub_model}"
    return (
        run.id,
        time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started)) if run.started else "?",
        run.status,
        str(run.iterations),
        f"{run.subcalls:,}",
        f"{run.input_tokens + run.output_tokens:,}",
        "-" if run.cost_usd is None else f"${run.cost_usd:.4f}",
        f"{run.duration_s:.1f} s",
        model or "?",
        shorten(", ".join(run.sources), SOURCES_CHARS),
        shorten(run.question, QUESTION_CHARS),
    )


def table(runs: Sequence[RunSummary]) -> str:
    """The header and a row per run, columns padded to their widest cell."""
    rows = [COLUMNS, *map(_row, runs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if name in RIGHT else c.ljust(w) for c, w, name in zip(row, widths, COLUMNS)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
