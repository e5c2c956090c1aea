"""What a batch reports while it runs: tasks starting, spending, ending; and how it ended.

Small frozen events for a batch sink (the progress view in `rlm_cli.trace.batch`, a test's
list). The runs inside a batch keep their own events for their trajectories; only the tokens
and cost they spend are passed on here (`TaskSpent`), so a progress line can count them live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlm_cli.batch.results import TaskResult
from rlm_cli.batch.tasks import Problem
from rlm_cli.events import Event, Notice, RootResponse, Sink, Subcall, Usage


@dataclass(frozen=True)
class BatchStart(Event):
    type: ClassVar[str] = "batch_start"
    total: int  # tasks in the file
    to_run: int  # not done by an earlier run of the same batch
    jobs: int
    where: str  # "this machine" or the Ray cluster's address


@dataclass(frozen=True)
class BadLine(Event):
    type: ClassVar[str] = "bad_line"
    problem: Problem
    file: str


@dataclass(frozen=True)
class TaskStart(Event):
    type: ClassVar[str] = "task_start"
    id: str


@dataclass(frozen=True)
class TaskSpent(Event):
    type: ClassVar[str] = "task_spent"
    id: str
    usage: Usage


@dataclass(frozen=True)
class TaskEnd(Event):
    type: ClassVar[str] = "task_end"
    result: TaskResult


@dataclass(frozen=True)
class BatchNotice(Event):
    type: ClassVar[str] = "batch_notice"
    message: str
    level: str = "info"  # info | warning


@dataclass
class Summary:
    """How a batch ended; `rlm_cli.cli` turns it into the exit code."""

    total: int = 0
    resumed: int = 0  # done by an earlier run, not run again
    ok: int = 0
    limit: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> tasks
    bad_lines: int = 0
    not_started: int = 0  # left when the batch's --max-cost was reached
    usage: Usage = Usage()
    duration_s: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def count(self, result: TaskResult) -> None:
        if result.status == "ok":
            self.ok += 1
        elif result.status == "limit":
            self.limit += 1
        else:
            kind = result.error_kind or "internal"
            self.errors[kind] = self.errors.get(kind, 0) + 1
        self.usage = self.usage + result.usage


@dataclass(frozen=True)
class BatchEnd(Event):
    type: ClassVar[str] = "batch_end"
    summary: Summary
    stopped: str | None = None  # why new tasks stopped starting, when they did


class TaskSink:
    """The sink of one task's run: passes its spending and its warnings on to the batch sink."""

    def __init__(self, task_id: str, batch: Sink) -> None:
        self._id = task_id
        self._batch = batch

    def emit(self, event: Event) -> None:
        if isinstance(event, RootResponse) or (isinstance(event, Subcall) and event.kind == "llm"):
            self._batch.emit(TaskSpent(self._id, event.usage))  # a sub-RLM's own turns and calls come one by one
        elif isinstance(event, Notice) and event.level == "warning":
            self._batch.emit(BatchNotice(event.message, "warning"))
