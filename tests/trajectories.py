"""Synthetic trajectories of any size, written with the real events and the real writer.

A real run of 30 turns and 2,000 sub-calls takes minutes against the scripted server; the readers
(`rlm runs`, `rlm show`, the HTML viewer, the export) only need its file. `write_run` emits the
events a run of that shape would, in the order the engine emits them, through `TrajectoryWriter`
with a fake clock that advances as a run would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlm_cli.events import Cell, Event, Final, Message, Notice, RootResponse, RunEnd, RunStart, Subcall, Usage
from rlm_cli.trace.trajectory import TrajectoryWriter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_run(
    path: Path,
    *,
    question: str = "How many errors are in the log?",
    turns: int = 3,
    subcalls: int = 4,
    answer: str | None = "42 errors",
    status: str = "ok",
    sub_rlm: bool = False,
    end: bool = True,
    sources: tuple[str, ...] = ("app.log",),
    cost: float | None = 0.0001,
    prompts: bool = True,
) -> Path:
    """A trajectory of `turns` root turns, the sub-calls spread over the cells, FINAL in the last.

    `sub_rlm` puts a two-turn sub-RLM under the first cell; `end=False` stops before `final` and
    `run_end`, as a killed run leaves it; `prompts=False` leaves out the `message` records, as
    trajectories written before they existed.
    """
    clock = Clock()
    writer = TrajectoryWriter(path, clock=clock)
    emit = writer.emit
    emit(Notice("loaded 1 file(s), 1,000 characters"))
    clock.advance(0.3)
    emit(RunStart(list(sources), "openai/root", "openai/sub", {"max_iterations": 30}, "0.1.0",
                  {"chars": 1000, "files": 1, "paths": list(sources)}, question))
    if prompts:
        emit(Message("system", "You answer a question about an input that is far too large to read at once.", 1))
        emit(Message("user", f"Question: {question}\n\n[iteration 1 of 30] Start by looking.", 1))
    per_cell = [subcalls // turns + (1 if i < subcalls % turns else 0) for i in range(turns)]
    call_id = 0
    total = Usage()
    for iteration in range(1, turns + 1):
        last = iteration == turns and end
        code = f"FINAL({answer!r})" if last else f"hits = context.grep(r'ERROR {iteration}')\nprint(len(hits))"
        clock.advance(1.0)
        usage = Usage(1000 + iteration, 50, cost)
        total += usage
        emit(RootResponse(iteration, f"Step {iteration}: I look for errors.\n```repl\n{code}\n```", usage, 1.0))
        if sub_rlm and iteration == 1:
            call_id += 1
            total += _sub_rlm(emit, clock, call_id)
        cell_start = clock.now
        for n in range(per_cell[iteration - 1]):
            call_id += 1
            clock.advance(0.05 if n % 8 else 0.2)  # batches of 8 in flight, each call 0.4 s
            sub_usage = Usage(200, 20, cost)
            total += sub_usage
            prompt = f"Count the errors in chunk {call_id}:\n" + "log line\n" * 80
            reply = f"{call_id % 7} errors"
            emit(Subcall(call_id, iteration, 1, "openai/sub", len(prompt), len(reply), sub_usage, 0.4,
                         prompt_preview=prompt[:600], response_preview=reply))
        clock.advance(0.1)
        output = "(no output)" if last else f"{iteration * 3}"
        emit(Cell(iteration, iteration, code, output, len(output), clock.now - cell_start, None, final=last))
        if not last and prompts:
            emit(Message("user", f"{iteration * 3}\n\n[iteration {iteration + 1} of 30] Continue.", iteration + 1))
    if end:
        emit(Final(answer, status))
        emit(RunEnd(status, turns, call_id, total, clock.now - 1000.0))
    writer.close()
    return path


def _sub_rlm(emit: Callable[[Event], None], clock: Clock, call_id: int) -> Usage:
    """A two-turn depth-1 sub-RLM started by the depth-0 cell 1, as the engine records it: its
    turns carry the id of its own `subcall` record (kind `rlm`, written when it ends) as `parent`."""
    emit(Notice("sub-RLM at depth 1 over 1,234 characters"))
    started = clock.now
    usage = Usage()
    for iteration in (1, 2):
        clock.advance(0.5)
        code = "FINAL('deep')" if iteration == 2 else "print(len(context))"
        usage += Usage(300, 10)
        emit(RootResponse(iteration, f"```repl\n{code}\n```", Usage(300, 10), 0.5, depth=1, parent=call_id))
        emit(Cell(iteration, iteration, code, "1234" if iteration == 1 else "(no output)", 4, 0.01, None,
                  final=iteration == 2, depth=1, parent=call_id))
    emit(Subcall(call_id, 1, 1, "openai/sub", 1250, 4, usage, clock.now - started, kind="rlm",
                 prompt_preview="How long is it?", response_preview="deep"))
    return usage
