"""The trace on stderr: each cell highlighted, its output trimmed, sub-call progress, totals.

One renderer serves both modes: on a terminal it keeps a live status line (spinner, sub-calls
done/total, tokens, cost) below the printed cells; elsewhere (a pipe, a CI log) it prints plain
lines only. It writes through the one Console it is given and never to stdout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text

from rlm_cli.events import (
    Cell,
    CellStart,
    Event,
    Notice,
    RootResponse,
    RunEnd,
    RunStart,
    Subcall,
    SubcallStart,
)
from rlm_cli.loop.parsing import prose
from rlm_cli.units import estimate_tokens

CODE_LINES = 40
OUTPUT_HEAD_LINES = 12
OUTPUT_TAIL_LINES = 4
LINE_CHARS = 300


def trim_lines(text: str, head: int, tail: int) -> str:
    """Keep the first `head` and last `tail` lines, each cut to LINE_CHARS, and say what was left out."""
    lines = [line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "…" for line in text.splitlines()]
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], f"… {len(lines) - head - tail} more lines …", *lines[-tail:]])


def _indent(text: str, width: int, marker: str = "") -> str:
    return "\n".join(" " * width + marker + line for line in text.splitlines())


def tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{n:,}"


def money(cost: float | None) -> str:
    return "" if cost is None else f" · ${cost:.4f}"


@dataclass
class _Batch:
    """Sub-call counts for the cell that is running."""

    started: int = 0
    done: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None

    def line(self) -> str:
        failed = f" · {self.failed} failed" if self.failed else ""
        spent = tokens(self.input_tokens + self.output_tokens)
        return f"sub-calls {self.done}/{self.started}{failed} · {spent} tok{money(self.cost)}"


class ConsoleTrace:
    """A sink that renders events on `console`; `live` adds the status line on a terminal."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self._live: Live | None = None
        self._want_live = live
        self._status = "starting"
        self._batch = _Batch()
        self._since = time.monotonic()

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStart):
            self._run_start(event)
        elif isinstance(event, Notice):
            style = "yellow" if event.level == "warning" else "dim"
            prefix = "warning: " if event.level == "warning" else ""
            self.console.print(Text(f"{prefix}{event.message}", style=style))
        elif isinstance(event, RootResponse):
            self._root_response(event)
        elif isinstance(event, CellStart):
            self._cell_start(event)
        elif isinstance(event, SubcallStart):
            self._batch.started += 1
        elif isinstance(event, Subcall):
            self._subcall(event)
        elif isinstance(event, Cell):
            self._cell(event)
        elif isinstance(event, RunEnd):
            self._run_end(event)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- events ---------------------------------------------------------------------------

    def _run_start(self, event: RunStart) -> None:
        ctx = event.context
        chars = int(ctx.get("chars", 0))
        files = int(ctx.get("files", 1))
        where = f"{files:,} files" if files > 1 else (ctx.get("paths") or ["input"])[0]
        sub = f" · sub-calls: {event.sub_model}" if event.sub_model != event.model else ""
        self.console.print(
            Text.assemble(
                ("rlm ", "bold"),
                f"{event.version} · {event.model}{sub} · {where}, {chars:,} chars (~{tokens(estimate_tokens(chars))} tok)",
            )
        )
        if self._want_live and self._live is None:
            self._live = Live(console=self.console, get_renderable=self._status_line, transient=True, refresh_per_second=8)
            self._live.start()
        self._set_status("waiting for the root model")

    def _root_response(self, event: RootResponse) -> None:
        depth = f" · depth {event.depth}" if event.depth else ""
        faults = f" · after {len(event.faults)} fault(s): {event.faults[-1]}" if event.faults else ""
        head = f"── iteration {event.iteration}{depth} · {event.duration_s:.1f} s · {tokens(event.usage.input_tokens)} → {tokens(event.usage.output_tokens)} tok{money(event.usage.cost_usd)}{faults}"
        self.console.print(Text(head, style="bold cyan"))
        said = prose(event.text)
        if said:
            self.console.print(Text(trim_lines(said, 4, 0), style="italic dim"))

    def _cell_start(self, event: CellStart) -> None:
        self._batch = _Batch()
        code = trim_lines(event.code, CODE_LINES, 0)
        if self._want_live:
            self.console.print(Padding(Syntax(code, "python", theme="ansi_dark", background_color="default"), (0, 0, 0, 2)))
        else:
            self.console.print(Text(_indent(code, 2, "> ")))
        self._set_status(f"running cell {event.cell_id}")

    def _subcall(self, event: Subcall) -> None:
        b = self._batch
        b.done += 1
        b.failed += event.error is not None
        b.input_tokens += event.usage.input_tokens
        b.output_tokens += event.usage.output_tokens
        if event.usage.cost_usd is not None:
            b.cost = (b.cost or 0.0) + event.usage.cost_usd

    def _cell(self, event: Cell) -> None:
        output = trim_lines(event.output, OUTPUT_HEAD_LINES, OUTPUT_TAIL_LINES)
        if output:
            self.console.print(Text(_indent(output, 4), style="dim"))
        parts = [f"cell {event.cell_id}", f"{event.duration_s:.2f} s"]
        if event.truncated:
            parts.append(f"printed {event.output_chars:,} chars, model shown head and tail")
        if self._batch.started:
            parts.append(self._batch.line())
        if event.error:
            parts.append(f"error: {event.error}")
        if event.final:
            parts.append("FINAL")
        style = "red" if event.error else ("green" if event.final else "dim")
        self.console.print(Text("    " + " · ".join(parts), style=style))
        self._set_status("waiting for the root model")

    def _run_end(self, event: RunEnd) -> None:
        self.close()
        mark, style = {"ok": ("✓", "bold green"), "limit": ("■", "bold yellow")}.get(event.status, ("✗", "bold red"))
        summary = (
            f"{mark} {event.status} · {event.iterations} iteration(s) · {event.subcalls} sub-call(s) · "
            f"{tokens(event.usage.input_tokens + event.usage.output_tokens)} tok{money(event.usage.cost_usd)} · {event.duration_s:.1f} s"
        )
        if event.error:
            summary += f" · {event.error}"
        self.console.print(Text(summary, style=style))

    # -- the live status line -------------------------------------------------------------

    def _set_status(self, status: str) -> None:
        self._status = status
        self._since = time.monotonic()

    def _status_line(self) -> RenderableType:
        elapsed = time.monotonic() - self._since
        text = f"{self._status} · {elapsed:.0f} s"
        if self._status.startswith("running") and self._batch.started:
            text += " · " + self._batch.line()
        return Group(Spinner("dots", text=Text(text, style="dim")))


def console_trace() -> ConsoleTrace:
    """The trace for this process's stderr: live on a terminal, plain lines elsewhere."""
    console = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs
    return ConsoleTrace(console, live=console.is_terminal)
