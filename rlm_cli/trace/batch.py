"""The progress of `rlm batch` on stderr: one live bar on a terminal, plain lines elsewhere.

On a terminal: a Rich progress bar (done of total, failed, running, tokens, cost, ETA) with a
line printed above it for each task that does not end `ok`. In a pipe or CI log: a line per
task as it ends and a closing line. A warning that many runs repeat (an isolation warning) is
shown once. It writes through the one Console it is given.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from rlm_cli.batch.events import BadLine, BatchEnd, BatchNotice, BatchStart, TaskEnd, TaskSpent, TaskStart
from rlm_cli.events import Event, Usage
from rlm_cli.trace.console import money, tokens


class BatchProgress:
    """A batch sink rendering on `console`; `live` draws the bar (on a terminal)."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self._live = live
        self._progress: Progress | None = None
        self._bar: TaskID | None = None
        self._total = 0
        self._done = 0
        self._failed = 0
        self._running = 0
        self._finished = Usage()  # what ended tasks spent, from their results
        self._spending: dict[str, Usage] = {}  # what running tasks spent so far (none from Ray)
        self._warned: set[str] = set()

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchStart):
            self._start(event)
        elif isinstance(event, BadLine):
            self.console.print(Text(f"error: {event.problem.text(event.file)}", style="red"))
        elif isinstance(event, BatchNotice):
            if event.level != "warning" or event.message not in self._warned:
                self._warned.add(event.message)
                prefix, style = ("warning: ", "yellow") if event.level == "warning" else ("", "dim")
                self.console.print(Text(prefix + event.message, style=style))
        elif isinstance(event, TaskStart):
            self._running += 1
            self._spending[event.id] = Usage()
        elif isinstance(event, TaskSpent):
            self._spending[event.id] = self._spending.get(event.id, Usage()) + event.usage
        elif isinstance(event, TaskEnd):
            self._end(event)
        elif isinstance(event, BatchEnd):
            self._finish(event)
        self._refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _start(self, event: BatchStart) -> None:
        self._total = event.to_run
        earlier = f" ({event.total - event.to_run} done earlier)" if event.total > event.to_run else ""
        self.console.print(Text(f"rlm batch · {event.to_run} task(s) to run{earlier} · {event.jobs} at a time on {event.where}", style="bold"))
        if self._live and event.to_run:
            self._progress = Progress(
                TextColumn("[bold]batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar = self._progress.add_task("batch", total=event.to_run, status="")
            self._progress.start()

    def _end(self, event: TaskEnd) -> None:
        result = event.result
        self._running -= 1
        self._done += 1
        self._failed += result.status == "error"
        self._spending.pop(result.id, None)
        self._finished = self._finished + result.usage
        if self._live and result.status == "ok":
            return
        spent = tokens(result.usage.input_tokens + result.usage.output_tokens)
        line = f"[{self._done}/{self._total}] {result.id} · {result.status} · {result.duration_s:.1f} s · {spent} tok{money(result.cost)}"
        if result.error:
            line += f" · {result.error}"
        style = {"ok": "green", "limit": "yellow"}.get(result.status, "red")
        self.console.print(Text(line, style=style))

    def _finish(self, event: BatchEnd) -> None:
        self.close()
        s = event.summary
        parts = [f"{s.ok} ok", f"{s.limit} limit", f"{s.failed} failed"]
        if s.resumed:
            parts.append(f"{s.resumed} done earlier")
        if s.bad_lines:
            parts.append(f"{s.bad_lines} bad line(s)")
        if s.not_started:
            parts.append(f"{s.not_started} not started")
        rate = f" · {(s.ok + s.limit + s.failed) / s.duration_s:.2f} tasks/s" if s.duration_s > 0 and s.ok + s.limit + s.failed else ""
        spent = tokens(s.usage.input_tokens + s.usage.output_tokens)
        line = f"batch: {' · '.join(parts)} · {spent} tok{money(s.usage.cost_usd)} · {s.duration_s:.1f} s{rate}"
        if event.stopped:
            line += f" · stopped: {event.stopped}"
        style = "bold green" if not s.failed and not s.limit and not s.bad_lines and not s.not_started else "bold yellow"
        self.console.print(Text(line, style=style))

    def _refresh(self) -> None:
        if self._progress is None or self._bar is None:
            return
        spent = self._finished
        for usage in self._spending.values():
            spent = spent + usage
        failed = f" · {self._failed} failed" if self._failed else ""
        status = f"{self._running} running{failed} · {tokens(spent.input_tokens + spent.output_tokens)} tok{money(spent.cost_usd)}"
        self._progress.update(self._bar, completed=self._done, status=status)


def batch_progress() -> BatchProgress:
    """The progress view for this process's stderr: live on a terminal, plain lines elsewhere."""
    console = Console(stderr=True, soft_wrap=True)
    return BatchProgress(console, live=console.is_terminal)
