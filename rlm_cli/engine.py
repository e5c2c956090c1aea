"""One run, start to end: scratch space, worker, model clients, root loop, cleanup.

`rlm_cli.api` builds a `Run` from a request and calls `answer`; it knows nothing of Typer or
Rich. Everything it does is reported to the sink it is given; it returns a `RunResult` or raises
an `RlmError` (whose `result` then says how far the run got), and it always stops the worker and
removes the scratch directory. `session()` is the same worker and sub-call runner for a person
at the REPL.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_cli import __version__, strategy
from rlm_cli.answers import AnswerCheck, Verdict
from rlm_cli.budget import Budget, Limits
from rlm_cli.codegraph import CodeIndex, build_code_index
from rlm_cli.errors import ContextWindowError, LimitError, ModelError, RlmError
from rlm_cli.events import Final, Notice, RootResponse, RunEnd, RunStart, Sink, Usage
from rlm_cli.loop.prompts import profile_for
from rlm_cli.loop.root import LoopResult, RootLoop
from rlm_cli.model_client import Closable, LiteLLMClient, ModelClient, ModelSettings
from rlm_cli.sources.context import Context
from rlm_cli.sources.git import RepoInfo
from rlm_cli.sources.summary import CodeSummary, ContextSummary
from rlm_cli.subcall_cache import SubcallCache
from rlm_cli.subcalls import Limiter, Scope, SubcallRunner, SubResult
from rlm_cli.units import CHARS_PER_TOKEN
from rlm_cli.worker.handoff import Handoff
from rlm_cli.worker.process import CellOutcome, WorkerProcess, max_workers
from rlm_cli.worker.protocol import LlmRequest

if TYPE_CHECKING:
    from rlm_cli.runs.state import RunState

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
    check: AnswerCheck | None = None  # what the top-level answer must satisfy (--schema, --cite)
    sub_limiter: Limiter | None = None  # shared with other runs (rlm batch); None: --concurrency of its own
    strategy: str = "rlm"  # rlm | direct | auto (rlm_cli.strategy)
    state: RunState | None = None  # the REPL variables kept at the end, and what an earlier run left (runs.state)


@dataclass(frozen=True)
class RunResult:
    answer: str | None
    status: str  # ok | limit | error | interrupted
    model: str
    sub_model: str
    iterations: int
    subcalls: int
    usage: Usage
    duration_s: float
    error: str | None = None
    verdict: Verdict | None = None  # the checked answer, with --schema / --cite


ClientFactory = Callable[[ModelSettings], ModelClient]


class Run:
    """Holds what one run shares across depths: config, budget, sink, clients, runner.

    `budget` may be handed in already running, so a request's clock (loading, local-server
    start) counts against `--timeout`.
    """

    def __init__(
        self,
        config: RunConfig,
        sink: Sink,
        make_client: ClientFactory = LiteLLMClient,
        budget: Budget | None = None,
        subcall_cache: SubcallCache | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.budget = budget if budget is not None else Budget(config.limits)
        self.budget.warn = lambda message: sink.emit(Notice(message, level="warning"))
        self._make_client = make_client
        self._clients: dict[tuple[str, str | None], ModelClient] = {}
        self._runner = SubcallRunner(
            self._sub_client, self.budget, sink, recurse=self._sub_rlm, cache=subcall_cache, limiter=config.sub_limiter
        )
        self._top: RootLoop | None = None  # the depth-0 loop, for the iterations of a failed run
        self._max_workers = max_workers()
        self._worker_slots: dict[int, asyncio.Semaphore] = {}  # depth -> workers running there
        self._direct_turns = 0  # 1 once a direct answer (no loop) was given
        self._subcall_cache = subcall_cache

    def _client(self, settings: ModelSettings) -> ModelClient:
        key = (settings.model, settings.api_base)
        if key not in self._clients:
            self._clients[key] = self._make_client(settings)
        return self._clients[key]

    def _sub_client(self, model: str | None) -> ModelClient:
        sub = self.config.sub
        return self._client(sub if model is None else replace(sub, model=model))

    def _sub_chars(self) -> int:
        return sub_chars_for(self._sub_client(None).context_window())

    async def answer(self, files: Mapping[str, str]) -> RunResult:
        """Run the root loop over `files` and return what came of it; cleans up whatever happens.

        A run that fails (a model error, a dead worker) raises, with `exc.result` holding its
        true iterations, usage and duration, as its `run_end` record says.
        """
        status, answer, error = "error", None, None
        verdict: Verdict | None = None
        try:
            async with asyncio.timeout(self.budget.remaining_time()):
                result = await self._direct(files) if self._strategy(files) == "direct" else None
                if result is None:
                    result = await self._loop(files, self.config.question, depth=0, created=self._set_top)
            status, answer, error, verdict = result.status, result.answer, result.reason, result.verdict
        except TimeoutError:
            status, error = "limit", self.budget.timeout_text()
        except LimitError as exc:
            status, error = "limit", str(exc)
        except RlmError as exc:
            error = str(exc)
            exc.result = self._result(answer, status, error)
            raise
        except asyncio.CancelledError:
            status, error = "interrupted", "interrupted"
            raise
        finally:
            self.sink.emit(Final(answer, status))
            self.sink.emit(
                RunEnd(status, self._iterations(), self.budget.subcalls, self.budget.usage, self.budget.elapsed(), error)
            )
            await self._close_clients()
        return self._result(answer, status, error, verdict)

    async def _close_clients(self) -> None:
        """Close the connections of every client this run made (a few milliseconds), so none
        is left to the garbage collector when the event loop ends."""
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients if isinstance(client, Closable)), return_exceptions=True)

    def _strategy(self, files: Mapping[str, str]) -> str:
        if self.config.check is not None:  # --schema and --cite are checked on a FINAL from the REPL
            return "rlm"
        if self.config.state is not None and self.config.state.continues:  # the earlier run's REPL and turns
            return "rlm"
        chars = sum(len(text) for text in files.values())
        return strategy.choose(self.config.strategy, chars, self.config.question, self._client(self.config.root).context_window())

    async def _direct(self, files: Mapping[str, str]) -> LoopResult | None:
        """The whole input in one prompt to the root model (rlm_cli.strategy), no worker; None
        when `auto` chose it and the model refused the prompt as too long: the loop answers then."""
        context = Context(files)
        root, auto = self.config.root, self.config.strategy == "auto"
        asked = strategy.Asked()
        try:
            answer = await strategy.answer_directly(self._client(root), str(context), self.config.question, asked, whole=auto)
        except ContextWindowError:
            if not auto:
                raise
            self.sink.emit(Notice("strategy auto: the input did not fit the root model's window after all; using the RLM loop"))
            return None
        self.sink.emit(RunStart(list(self.config.sources), root.model, self.config.sub.model, asdict(self.config.limits),
                                __version__, ContextSummary.of(files), self.config.question))
        self.sink.emit(Notice(f"strategy {self.config.strategy}: the input in one prompt to the root model"))
        usage = Usage()
        for completion in asked.completions:
            self.budget.charge(completion.usage, root.model)
            usage = usage + completion.usage
            self.sink.emit(RootResponse(1, completion.text, completion.usage, completion.duration_s, completion.faults))
        self._direct_turns = 1
        return LoopResult(answer, "ok", 1, usage=usage)

    def _set_top(self, loop: RootLoop) -> None:
        self._top = loop

    def _iterations(self) -> int:
        return self._top.iterations if self._top is not None else self._direct_turns

    def _result(self, answer: str | None, status: str, error: str | None, verdict: Verdict | None = None) -> RunResult:
        return RunResult(
            answer=answer,
            status=status,
            model=self.config.root.model,
            sub_model=self.config.sub.model,
            iterations=self._iterations(),
            subcalls=self.budget.subcalls,
            usage=self.budget.usage,
            duration_s=self.budget.elapsed(),
            error=error,
            verdict=verdict,
        )

    @contextlib.asynccontextmanager
    async def session(self, files: Mapping[str, str]) -> AsyncIterator[Session]:
        """A worker over `files` whose sub-calls go to the sub-model, for a person at the REPL."""
        async with self.worker(files) as worker:
            yield Session(worker, self._runner, self.config.limits.cell_timeout, self.config.sub.model)

    @contextlib.asynccontextmanager
    async def worker(self, files: Mapping[str, str], depth: int = 0, *, started: bool = True) -> AsyncIterator[WorkerProcess]:
        """A worker holding `files` as `context` (with the code graph at depth 0), started unless
        `started` is False (the caller then starts it, see `_alongside_start`); stopped, and its
        scratch directory removed, on the way out.

        At most `max_workers()` workers run at each depth; the others wait for a slot. Slots
        are per depth, so a parent holding one never waits on its children for its own.
        """
        code = await asyncio.to_thread(self._index_code, files) if depth == 0 else None
        repo = self.config.repository if depth == 0 else None
        repository = RepoInfo(str(repo["name"]), repo.get("commit"), repo.get("remote_url")) if repo else None
        handoff = Handoff.of(files, code, repository)
        slots = self._worker_slots.setdefault(depth, asyncio.Semaphore(self._max_workers))
        state = self.config.state if depth == 0 else None
        async with slots:
            scratch = Path(tempfile.mkdtemp(prefix=f"rlm-depth{depth}-"))
            try:
                worker = WorkerProcess(handoff, scratch, inherit=state.fds() if state is not None else ())
                try:
                    if started:
                        await worker.start()
                        self._isolation_notices(worker, depth)
                        if state is not None:  # a follow-up or resume: its variables before the first turn
                            await state.restore(worker, self.sink)
                    yield worker
                finally:
                    if state is not None:  # whatever ended the run, Ctrl-C too: the variables outlive it
                        await state.keep(worker, self.sink)
                    await worker.close()
            finally:
                # Never follows a link the worker planted: on Linux rmtree walks by descriptor.
                shutil.rmtree(scratch, ignore_errors=True)

    def _isolation_notices(self, worker: WorkerProcess, depth: int) -> None:
        for warning in worker.warnings if depth == 0 else ():  # once per run: what isolation is missing
            self.sink.emit(Notice(warning, level="warning"))

    async def _alongside_start(self, worker: WorkerProcess, run: Coroutine[Any, Any, LoopResult], depth: int) -> LoopResult:
        """Run the loop while its worker starts: the first root request needs only the summary
        the host built, so it goes out at once (the worker's start, ~0.2 s, overlaps the model's
        reply), and the first cell waits for the start. A start that fails ends the run with its
        own error, without waiting for the model's reply; it wins over a model error too, as it
        did when the worker started first."""
        starting = worker.start_soon()
        running = asyncio.ensure_future(run)
        try:
            await asyncio.wait({starting, running}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                self._isolation_notices(worker, depth)
                if depth == 0 and self._subcall_cache is not None:
                    # Now, while the model answers the first request, not when a batch waits on it
                    # (nor before that request left: its ~0.1 s would compete with it for the CPU).
                    self._subcall_cache.open_soon()
            return await running
        finally:
            if not running.done():
                running.cancel()
                await asyncio.wait({running})
            if running.done() and not running.cancelled():
                running.exception()  # retrieved: a loop cut short by the start's error says nothing more

    async def _loop(
        self,
        files: Mapping[str, str],
        question: str,
        depth: int,
        parent: int | None = None,
        created: Callable[[RootLoop], None] | None = None,
    ) -> LoopResult:
        """Drive one root loop in its own worker; `created` sees the loop before it runs, so a
        caller can read its iterations and usage after a failure."""
        state = self.config.state if depth == 0 else None
        async with self.worker(files, depth, started=state is not None and state.continues) as worker:
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
                self._runner,
                self.budget,
                self.sink,
                profile_for(root.model, self.config.profile),
                sub_chars=self._sub_chars(),
                depth=depth,
                parent=parent,
                check=self.config.check if depth == 0 else None,
            )
            if created is not None:
                created(loop)
            if state is not None and state.continues:  # the worker was started and restored first
                return await loop.run(question, history=state.history())
            return await self._alongside_start(worker, loop.run(question), depth)

    def _index_code(self, files: Mapping[str, str]) -> tuple[CodeIndex, CodeSummary] | None:
        """Parse the code (all cores, cached) for the worker's code graph.

        Returns the index and the summary the prompt states, or None when nothing is code.
        """
        index = build_code_index(files, cache_dir=self.config.code_cache_dir)
        summary = index.summary()
        stated = prompt_code_summary(summary)
        if stated is None:
            return None
        self.sink.emit(Notice(_code_notice(summary)))
        return index, stated

    async def _sub_rlm(self, question: str, context: str, depth: int, call_id: int) -> SubResult:
        """A recursive sub-RLM: its own worker over `context`, driven by the sub-model; its
        events carry `call_id` as their parent."""
        self.sink.emit(Notice(f"sub-RLM at depth {depth} over {len(context):,} characters"))
        loops: list[RootLoop] = []
        try:
            result = await self._loop({"<context>": context}, question, depth, parent=call_id, created=loops.append)
        except (ModelError, LimitError) as exc:
            return SubResult(error=f"the sub-RLM at depth {depth} failed: {exc}", usage=loops[0].usage if loops else Usage())
        if result.answer is None or result.status != "ok":
            why = result.reason or "no answer"
            partial = f"; its partial answer: {result.answer}" if result.answer else ""
            return SubResult(error=f"the sub-RLM at depth {depth} ended without an answer ({why}){partial}", usage=result.usage)
        return SubResult(text=result.answer, usage=result.usage)


class Session:
    """A person's REPL: run cells in the worker, their sub-calls served by the run's runner."""

    def __init__(self, worker: WorkerProcess, runner: SubcallRunner, cell_timeout: float, model: str) -> None:
        self.model = model  # what llm_query calls
        self._worker = worker
        self._runner = runner
        self._cell_timeout = cell_timeout
        self._cells = 0

    @property
    def summary(self) -> ContextSummary:
        return self._worker.summary

    async def execute(self, code: str, max_output_chars: int) -> CellOutcome:
        self._cells += 1
        scope = Scope(self._cells)

        async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
            return [result.wire() for result in await self._runner.handle(request, scope)]

        return await self._worker.execute(
            self._cells, code, timeout=self._cell_timeout, max_output_chars=max_output_chars, on_llm=on_llm
        )


def sub_chars_for(window: int | None) -> int:
    """What the root is told one sub-call can read, from the sub-model's window in tokens."""
    return int(window * CHARS_PER_TOKEN * 0.8) if window else DEFAULT_SUB_CHARS


def prompt_code_summary(summary: dict[str, Any]) -> CodeSummary | None:
    """The code graph's counts the prompt states (`rlm ask --dry-run` states the same); None when
    nothing is code: prose and data (Markdown, JSON) parse, but hold no code to query."""
    return CodeSummary.of(summary) if summary["symbols"] else None


def _code_notice(summary: dict[str, Any]) -> str:
    languages = ", ".join(f"{lang} {n}" for lang, n in summary["languages"].items())
    cache = summary["cache"]
    return (
        f"code graph: {summary['parsed_files']:,} files ({languages}), {summary['symbols']:,} symbols"
        f" in {summary['index_time_s']:.2f} s ({cache['hits']:,} from cache)"
    )
