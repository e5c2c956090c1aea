"""Running a batch: the bookkeeping every runner shares, and the runner for this machine.

`Batch` decides what runs (tasks not done by an earlier run), whether another task may start
(the batch's `--max-cost`), and records each result as it ends (the results file, the sink,
the summary). `run_local` runs the tasks `jobs` at a time in one event loop through
`Rlm.ask_async`: one `ModelSession` per distinct model settings, so a local model server starts
once, and one sub-call limiter per provider, so `jobs` runs share `concurrency` connections
instead of opening that many each. A task that fails is one result; it never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rlm_cli.api import AskResult, ModelFlags, ModelSession, Rlm
from rlm_cli.batch.events import BadLine, BatchEnd, BatchNotice, BatchStart, Summary, TaskEnd, TaskSink, TaskSpent, TaskStart
from rlm_cli.batch.results import ResultsFile, TaskResult
from rlm_cli.batch.tasks import Problem, Task
from rlm_cli.errors import Interrupted, RlmError, UsageError
from rlm_cli.events import Event, Notice, Sink, Usage
from rlm_cli.settings import ModelChoice
from rlm_cli.subcalls import Limiter

RlmFactory = Callable[[Sequence[Sink]], Rlm]  # a test hands in Rlm(sinks, make_client=fake, ...)


def trace_path(traces: Path, task_id: str) -> Path:
    """A task's trajectory file: its id made safe as a file name (plus a hash when it had to change)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:100].lstrip(".") or "task"
    if safe != task_id:
        safe += "-" + hashlib.sha1(task_id.encode()).hexdigest()[:8]
    return traces / f"{safe}.jsonl"


@dataclass(frozen=True)
class Plan:
    """What the batch was asked to do, after the task file was read."""

    tasks: list[Task]
    problems: list[Problem]
    task_file: str
    traces: Path  # one trajectory per task, named after its id
    max_cost: float | None = None  # the whole batch's; stops starting new tasks when reached


class Batch:
    """The bookkeeping of one batch run, whatever runs its tasks."""

    def __init__(self, plan: Plan, results: ResultsFile, sink: Sink) -> None:
        self.plan = plan
        self.results = results
        self.sink = sink
        self.summary = Summary(total=len(plan.tasks) + len(plan.problems), bad_lines=len(plan.problems))
        self.pending = [t for t in plan.tasks if results.done(t.id) is None]
        self.summary.resumed = len(plan.tasks) - len(self.pending)
        self.stopped: str | None = None
        self._started = time.monotonic()
        self._running: dict[str, Usage] = {}  # what the tasks in flight have spent so far

    def begin(self, jobs: int, where: str) -> None:
        try:
            self.plan.traces.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot make --traces {self.plan.traces}: {exc.strerror or exc}") from exc
        self.results.open()
        self.sink.emit(BatchStart(len(self.plan.tasks), len(self.pending), jobs, where))
        for problem in self.plan.problems:
            self.sink.emit(BadLine(problem, self.plan.task_file))
        if self.results.unreadable:
            self.sink.emit(BatchNotice(f"{self.results.path}: {self.results.unreadable} unreadable line(s) ignored", "warning"))

    def next_task(self) -> Task | None:
        """The next task to start, or None when none is left or the batch's budget is spent."""
        if not self.pending or self.stopped:
            return None
        cap = self.plan.max_cost
        spent = self.spent().cost_usd or 0.0
        if cap is not None and spent >= cap:
            self.stopped = f"the batch's --max-cost ${cap:g} was reached (${spent:.4f})"
            self.summary.not_started = len(self.pending)
            self.sink.emit(BatchNotice(f"{self.stopped}: {len(self.pending)} task(s) not started", "warning"))
            return None
        task = self.pending.pop(0)
        self._running[task.id] = Usage()
        self.sink.emit(TaskStart(task.id))
        return task

    def spent(self) -> Usage:
        total = self.summary.usage
        for usage in self._running.values():
            total = total + usage
        return total

    def emit(self, event: Event) -> None:
        """A sink for the runs: spending counts towards the budget, then goes to the batch sink."""
        if isinstance(event, TaskSpent) and event.id in self._running:
            self._running[event.id] = self._running[event.id] + event.usage
        self.sink.emit(event)

    def finished(self, result: TaskResult) -> None:
        self._running.pop(result.id, None)
        self.results.append(result)
        self.summary.count(result)
        self.sink.emit(TaskEnd(result))

    def abandoned(self, task_id: str) -> None:
        """A task that was cut off (Ctrl-C): no record, so the next run does it again."""
        self._running.pop(task_id, None)

    def end(self) -> Summary:
        self.results.close()
        self.summary.duration_s = time.monotonic() - self._started
        self.sink.emit(BatchEnd(self.summary, self.stopped))
        return self.summary

    def request_for(self, task: Task) -> Task:
        """The task with its trajectory file set: one per task, beside the results."""
        return replace(task, request=replace(task.request, trace=trace_path(self.plan.traces, task.id)))


def provider_key(choice: ModelChoice) -> str:
    """Which server sub-calls go to: the --sub-api-base, else the sub-model's provider prefix."""
    if choice.sub_api_base:
        return choice.sub_api_base
    return choice.sub_model.split("/", 1)[0] if "/" in choice.sub_model else choice.sub_model


async def execute(task_id: str, ask: Callable[[], Awaitable[AskResult]]) -> TaskResult:
    """One task's ask, whatever happens, as its result; only Ctrl-C gets out.

    Shared by the runner here and the Ray task on a node, so both record a failure alike.
    """
    started = time.monotonic()
    try:
        return TaskResult.of(task_id, await ask())
    except Interrupted:
        raise
    except RlmError as exc:
        if exc.result is not None:
            return TaskResult.of(task_id, exc.result, exc)
        return TaskResult.failed(task_id, exc, time.monotonic() - started)
    except Exception as exc:  # a bug in one task is that task's error, not the batch's end
        return TaskResult.failed(task_id, exc, time.monotonic() - started)


class LocalRunner:
    """Runs a batch's tasks in this process, `jobs` at a time, sharing sessions and limiters."""

    def __init__(self, make_rlm: RlmFactory, jobs: int, concurrency: int) -> None:
        self._make_rlm = make_rlm
        self._jobs = max(1, jobs)
        self._concurrency = max(1, concurrency)
        self._sessions: dict[ModelFlags, ModelSession | RlmError] = {}
        self._limiters: dict[str, asyncio.Semaphore] = {}

    async def run(self, batch: Batch) -> Summary:
        batch.begin(self._jobs, "this machine")
        notices = self._make_rlm([_Notices(batch)])
        try:
            await asyncio.gather(*(self._work(batch, notices) for _ in range(min(self._jobs, len(batch.pending)) or 1)))
        finally:
            for session in self._sessions.values():
                if isinstance(session, ModelSession):
                    session.close()
            summary = batch.end()
        return summary

    async def _work(self, batch: Batch, notices: Rlm) -> None:
        while (task := batch.next_task()) is not None:
            try:
                result = await self._one(batch.request_for(task), batch, notices)
            except BaseException:
                batch.abandoned(task.id)
                raise
            batch.finished(result)

    async def _one(self, task: Task, batch: Batch, notices: Rlm) -> TaskResult:
        async def ask() -> AskResult:
            session = self._session(task.request.models, notices)
            limiter = self._limiter(session.choice)
            rlm = self._make_rlm([TaskSink(task.id, batch)])
            return await rlm.ask_async(task.request, models=session, sub_limiter=limiter)

        return await execute(task.id, ask)

    def _session(self, flags: ModelFlags, notices: Rlm) -> ModelSession:
        """One session per distinct model flags; a flags that cannot resolve fails every task using it."""
        if flags not in self._sessions:
            try:
                self._sessions[flags] = notices.models(flags)
            except RlmError as exc:
                self._sessions[flags] = exc
        session = self._sessions[flags]
        if isinstance(session, RlmError):
            raise type(session)(str(session))  # a fresh one per task: each carries its own result
        return session

    def _limiter(self, choice: ModelChoice) -> Limiter:
        key = provider_key(choice)
        if key not in self._limiters:
            self._limiters[key] = asyncio.Semaphore(self._concurrency)
        return self._limiters[key]


class _Notices:
    """The sink of the shared model sessions (local servers starting): warnings to the batch."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    def emit(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._batch.emit(BatchNotice(event.message, event.level))
