"""One run, start to end: scratch space, worker, model clients, root loop, cleanup.

This is the library entry point the CLI calls (`answer`); it knows nothing of Typer or Rich.
Everything it does is reported to the sink it is given; it returns a `RunResult` or raises an
`RlmError`, and it always stops the worker and removes the scratch directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rlm_cli import __version__
from rlm_cli.budget import Budget, Limits
from rlm_cli.codegraph import CodeIndex, build_code_index
from rlm_cli.errors import LimitError, ModelError, RlmError
from rlm_cli.events import Final, Notice, RunEnd, RunStart, Sink, Usage
from rlm_cli.loop.prompts import profile_for
from rlm_cli.loop.root import LoopResult, RootLoop
from rlm_cli.model_client import (
    LiteLLMClient,
    ModelClient,
    ModelSettings,
    import_litellm,
)
from rlm_cli.sources.git import RepoInfo
from rlm_cli.sources.summary import CodeSummary
from rlm_cli.subcalls import CHARS_PER_TOKEN, SubcallRunner
from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import WorkerProcess, max_workers

DEFAULT_SUB_CHARS = 100_000  # what we tell the root a sub-call can read when the window is unknown


@dataclass(frozen=True)
class RunConfig:
    question: str
    root: ModelSettings
    sub: ModelSettings
    limits: Limits = Limits()
    sources: tuple[str, ...] = ()
    profile: str | None = None  # a prompt profile by name; None picks one by model
    code_cache_dir: Path | None = None  # the parse cache of the code graph; None: the default
    repository: dict[str, str | None] | None = None  # name, commit, remote_url of a git source


@dataclass(frozen=True)
class RunResult:
    answer: str | None
    status: str  # ok | limit | error
    model: str
    sub_model: str
    iterations: int
    subcalls: int
    usage: Usage
    duration_s: float
    error: str | None = None


ClientFactory = Callable[[ModelSettings], ModelClient]


def warm_up() -> None:
    """Start importing litellm in the background while sources load and the worker starts."""
    threading.Thread(target=import_litellm, name="litellm-import", daemon=True).start()


class Run:
    """Holds what one run shares across depths: config, budget, sink, clients, runner."""

    def __init__(self, config: RunConfig, sink: Sink, make_client: ClientFactory = LiteLLMClient) -> None:
        self.config = config
        self.sink = sink
        self.budget = Budget(config.limits)
        self._make_client = make_client
        self._clients: dict[tuple[str, str | None], ModelClient] = {}
        self.runner = SubcallRunner(self._sub_client, self.budget, sink, recurse=self._sub_rlm)
        self._max_workers = max_workers()
        self._worker_slots: dict[int, asyncio.Semaphore] = {}  # depth -> workers running there

    def _client(self, settings: ModelSettings) -> ModelClient:
        key = (settings.model, settings.api_base)
        if key not in self._clients:
            self._clients[key] = self._make_client(settings)
        return self._clients[key]

    def _sub_client(self, model: str | None) -> ModelClient:
        sub = self.config.sub
        return self._client(sub if model is None else replace(sub, model=model))

    def _sub_chars(self) -> int:
        window = self._sub_client(None).context_window()
        return int(window * CHARS_PER_TOKEN * 0.8) if window else DEFAULT_SUB_CHARS

    async def answer(self, files: Mapping[str, str]) -> RunResult:
        """Run the root loop over `files` and return what came of it; cleans up whatever happens."""
        started = time.monotonic()
        status, answer, error, iterations = "error", None, None, 0
        try:
            async with asyncio.timeout(self.config.limits.timeout):
                result = await self._loop(files, self.config.question, depth=0)
            status, answer, iterations = result.status, result.answer, result.iterations
            if result.reason:
                error = result.reason
        except TimeoutError:
            status, error = "limit", f"time limit reached (--timeout {self.config.limits.timeout:g} s)"
        except LimitError as exc:
            status, error = "limit", str(exc)
        except RlmError as exc:
            error = str(exc)
            raise
        except asyncio.CancelledError:
            status, error = "interrupted", "interrupted"
            raise
        finally:
            self.sink.emit(Final(answer, status))
            self.sink.emit(
                RunEnd(status, iterations, self.budget.subcalls, self.budget.usage, time.monotonic() - started, error)
            )
        return RunResult(
            answer=answer,
            status=status,
            model=self.config.root.model,
            sub_model=self.config.sub.model,
            iterations=iterations,
            subcalls=self.budget.subcalls,
            usage=self.budget.usage,
            duration_s=time.monotonic() - started,
            error=error,
        )

    @contextlib.asynccontextmanager
    async def worker(self, files: Mapping[str, str], depth: int = 0) -> AsyncIterator[WorkerProcess]:
        """A started worker holding `files` as `context` (with the code graph at depth 0);
        stopped, and its scratch directory removed, on the way out.

        At most `max_workers()` workers run at each depth; the others wait for a slot. Slots
        are per depth, so a parent holding one never waits on its children for its own.
        """
        code = await asyncio.to_thread(self._index_code, files) if depth == 0 else None
        repo = self.config.repository if depth == 0 else None
        repository = RepoInfo(str(repo["name"]), repo.get("commit"), repo.get("remote_url")) if repo else None
        handoff = Handoff.of(files, code, repository)
        slots = self._worker_slots.setdefault(depth, asyncio.Semaphore(self._max_workers))
        async with slots:
            scratch = Path(tempfile.mkdtemp(prefix=f"rlm-depth{depth}-"))
            try:
                worker = WorkerProcess(handoff, scratch)
                try:
                    await worker.start()
                    for warning in worker.warnings if depth == 0 else ():  # once per run: what isolation is missing
                        self.sink.emit(Notice(warning, level="warning"))
                    yield worker
                finally:
                    await worker.close()
            finally:
                # Never follows a link the worker planted: on Linux rmtree walks by descriptor.
                shutil.rmtree(scratch, ignore_errors=True)

    async def _loop(self, files: Mapping[str, str], question: str, depth: int) -> LoopResult:
        async with self.worker(files, depth) as worker:
            root = self.config.root if depth == 0 else self.config.sub
            if depth == 0:
                self.sink.emit(
                    RunStart(
                        sources=list(self.config.sources),
                        model=self.config.root.model,
                        sub_model=self.config.sub.model,
                        limits=asdict(self.config.limits),
                        version=__version__,
                        context=worker.summary,
                        question=self.config.question,
                    )
                )
            loop = RootLoop(
                self._client(root),
                worker,
                self.runner,
                self.budget,
                self.sink,
                profile_for(root.model, self.config.profile),
                sub_chars=self._sub_chars(),
                depth=depth,
            )
            return await loop.run(question)

    def _index_code(self, files: Mapping[str, str]) -> tuple[CodeIndex, CodeSummary] | None:
        """Parse the code (all cores, cached) for the worker's code graph.

        Returns the index and the summary the prompt states, or None when nothing is code.
        """
        index = build_code_index(files, cache_dir=self.config.code_cache_dir)
        summary = index.summary()
        if not summary["symbols"]:  # prose and data (Markdown, JSON) parse, but hold no code to query
            return None
        self.sink.emit(Notice(_code_notice(summary)))
        return index, CodeSummary.of(summary)

    async def _sub_rlm(self, question: str, context: str, depth: int) -> str:
        """A recursive sub-RLM: its own worker over `context`, driven by the sub-model."""
        self.sink.emit(Notice(f"sub-RLM at depth {depth} over {len(context):,} characters"))
        result = await self._loop({"<context>": context}, question, depth)
        if result.answer is None:
            raise ModelError(f"the sub-RLM at depth {depth} ended without an answer ({result.reason})")
        return result.answer


def _code_notice(summary: dict[str, Any]) -> str:
    languages = ", ".join(f"{lang} {n}" for lang, n in summary["languages"].items())
    cache = summary["cache"]
    return (
        f"code graph: {summary['parsed_files']:,} files ({languages}), {summary['symbols']:,} symbols"
        f" in {summary['index_time_s']:.2f} s ({cache['hits']:,} from cache)"
    )
