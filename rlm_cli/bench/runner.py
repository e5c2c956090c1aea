"""Run tasks through methods, up to `jobs` at once; score each, write its results file, report progress.

Each (task, method) pair is one job. A task's input is written to disk once, before its first
job, and its text is read once for the baselines. Progress goes to `on_event` as small frozen
events (the CLI prints them on stderr); results files go to `<output>/results/`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rlm_cli.bench.methods import Method, MethodResult, Prepared
from rlm_cli.bench.scoring import score
from rlm_cli.bench.tasks.base import Task
from rlm_cli.sources.context import Context
from rlm_cli.sources.loader import load_sources


@dataclass(frozen=True)
class Outcome:
    task: Task
    method: str
    result: MethodResult
    score: float

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task.describe(), "method": self.method, "score": round(self.score, 4), **asdict(self.result)}


@dataclass(frozen=True)
class JobStarted:
    task: Task
    method: str
    index: int  # 1-based
    total: int


@dataclass(frozen=True)
class JobFinished:
    outcome: Outcome
    done: int
    total: int


BenchEvent = JobStarted | JobFinished


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class _Inputs:
    """Each task's input on disk and as text, made once however many methods use it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: dict[str, tuple[str, Callable[[], str]]] = {}
        self._lock = asyncio.Lock()

    async def prepare(self, task: Task, trace: Path | None) -> Prepared:
        async with self._lock:
            if task.id not in self._made:
                source = await asyncio.to_thread(task.write_input, self.directory)
                # The text rlm's `context` holds (file headers included), read only if a baseline asks.
                self._made[task.id] = source, cache(lambda: str(Context(load_sources((source,)).files)))
        source, text = self._made[task.id]
        return Prepared(source=source, text=text, trace=trace)


async def run_bench(
    tasks: Sequence[Task],
    methods: Sequence[Method],
    *,
    jobs: int,
    workdir: Path,
    results_dir: Path | None = None,
    on_event: Callable[[BenchEvent], None] = lambda event: None,
) -> list[Outcome]:
    """Every task through every method; outcomes in (task, method) order."""
    pairs = [(task, method) for task in tasks for method in methods]
    inputs = _Inputs(workdir / "inputs")
    gate = asyncio.Semaphore(max(1, jobs))
    done = 0
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)

    async def one(index: int, task: Task, method: Method) -> Outcome:
        nonlocal done
        async with gate:
            on_event(JobStarted(task, method.name, index, len(pairs)))
            trace = results_dir / f"{_safe(task.id)}.{method.name}.trace.jsonl" if results_dir else None
            prepared = await inputs.prepare(task, trace)
            result = await method.run(task, prepared)
            outcome = Outcome(task, method.name, result, score(task.rule, result.answer, task.gold, task.meta.get("choices", ())))
            if results_dir is not None:
                path = results_dir / f"{_safe(task.id)}.{method.name}.json"
                await asyncio.to_thread(path.write_text, json.dumps(outcome.as_json(), indent=1, ensure_ascii=False) + "\n")
            done += 1
            on_event(JobFinished(outcome, done, len(pairs)))
            return outcome

    try:
        return list(await asyncio.gather(*(one(i, t, m) for i, (t, m) in enumerate(pairs, 1))))
    finally:
        await asyncio.gather(*(m.aclose() for m in methods))
