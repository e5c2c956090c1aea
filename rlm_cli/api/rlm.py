"""`Rlm`: the library entry point. Everything the CLI does, a script can do with it.

    from rlm_cli.api import AskRequest, Inputs, Rlm
    result = Rlm().ask(AskRequest(Inputs(("./repo",)), "Where is the config parsed?"))
    print(result.answer)

`Rlm` never writes to stdout or stderr and never picks an exit code: it reports to the sinks it
is given, returns an `AskResult` (status `ok` or `limit`) or raises an `RlmError`, whose `result`
then says how far the run got. Settings are resolved once per request, here, from the request's
`ModelFlags`, the environment it was given and the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TypeVar

from rlm_cli import settings as settings_module
from rlm_cli import strategy as strategy_module
from rlm_cli.answers import AnswerCheck
from rlm_cli.api import continuing as continuing_module
from rlm_cli.api.continuing import Continuing
from rlm_cli.api.models import ClientFactory, ModelSession
from rlm_cli.api.requests import AskRequest, Inputs, ReplRequest, ResumeRequest
from rlm_cli.api.results import AskResult
from rlm_cli.budget import Budget, Limits
from rlm_cli.clients import ClientMaker, warm_up_for
from rlm_cli.concurrency import Limiters
from rlm_cli.engine import Run, RunConfig, RunResult, Session
from rlm_cli.errors import Interrupted, LimitError, ModelError, RlmError
from rlm_cli.events import Fanout, Notice, Origin, Redacted, Sink
from rlm_cli.inspection import Inspection, inspect_sources
from rlm_cli.model_client import Completion, ModelSettings
from rlm_cli.paths import cache_dir, check_writable
from rlm_cli.redaction import redact, redaction_wanted
from rlm_cli.runs.continuation import digest
from rlm_cli.runs.state import RunState
from rlm_cli.settings import ModelFlags, Settings
from rlm_cli.sources.loader import LoadedSources
from rlm_cli.subcall_cache import SubcallCache
from rlm_cli.subcalls import Limiter
from rlm_cli.trace.trajectory import TrajectoryWriter, default_trace_path

T = TypeVar("T")


class Rlm:
    """Runs asks, REPL sessions and inspections; `sinks` see every event of every run."""

    def __init__(
        self,
        sinks: Sequence[Sink] = (),
        *,
        environ: Mapping[str, str] = os.environ,
        make_client: ClientFactory | None = None,
        local_available: Callable[[], bool] | None = None,
        code_cache_dir: Path | None = None,
        limiters: Limiters | None = None,
    ) -> None:
        """`make_client` replaces the transports (tests hand in fakes); `limiters` (one adaptive
        concurrency limiter per provider) may be shared by several `Rlm`s."""
        self._sinks = tuple(sinks)
        self._environ = environ
        self._make_client = make_client
        self._limiters = limiters or Limiters()
        self._local_available = local_available
        self._code_cache_dir = code_cache_dir

    # -- settings and models ------------------------------------------------------------

    def settings(self, flags: ModelFlags) -> Settings:
        if self._local_available is None:
            return settings_module.resolve(flags, self._environ)
        return settings_module.resolve(flags, self._environ, self._local_available)

    def models(self, flags: ModelFlags) -> ModelSession:
        """The models `flags` name, ready to call; local servers stop when the session closes."""
        return ModelSession(self.settings(flags), self._notify(Fanout(*self._sinks)), self._client_factory(Limits()))

    def _client_factory(self, limits: Limits) -> ClientFactory:
        return self._make_client or ClientMaker(self._limiters, limits)

    @staticmethod
    def _notify(sink: Sink) -> Callable[[str], None]:
        return lambda message: sink.emit(Notice(message))

    # -- ask ------------------------------------------------------------------------------

    def ask(self, request: AskRequest) -> AskResult:
        """`ask_async` for code without an event loop; Ctrl-C becomes `Interrupted`."""
        return _sync(self.ask_async(request))

    def resume(self, request: ResumeRequest) -> AskResult:
        """`resume_async` for code without an event loop; Ctrl-C becomes `Interrupted`."""
        return _sync(self.resume_async(request))

    async def ask_async(
        self, request: AskRequest, models: ModelSession | None = None, sub_limiter: Limiter | None = None
    ) -> AskResult:
        """Answer one request; `models` lets many requests share started local servers, and
        `sub_limiter` lets them share the slots for sub-calls to one provider. With
        `request.follow_up`, the earlier run's Q&A and REPL variables come along."""
        continuing = None
        if request.follow_up is not None:
            request, continuing = continuing_module.follow_up(request)
        return await self._ask(request, continuing, models, sub_limiter)

    async def resume_async(self, request: ResumeRequest) -> AskResult:
        """Go on with an interrupted or limit-ended run: its conversation and variables, fresh limits.

        A new trajectory records it, naming the run it resumes; sub-calls the earlier run finished
        come from the sub-call cache."""
        asked, continuing = continuing_module.resume(request)
        return await self._ask(asked, continuing)

    async def _ask(
        self,
        request: AskRequest,
        continuing: Continuing | None,
        models: ModelSession | None = None,
        sub_limiter: Limiter | None = None,
    ) -> AskResult:
        budget = Budget(request.limits)  # the clock starts now: --timeout covers loading too
        question = request.checked_question()
        check = AnswerCheck(request.schema, request.cite) if request.schema is not None or request.cite else None
        strategy_module.check(request.strategy)
        settings = models.settings if models is not None else self.settings(request.models)
        trace = request.trace or default_trace_path()
        if request.trace is not None:
            check_writable(trace, "--trace")
        warm_up_for((settings.models.model, settings.models.api_base), (settings.models.sub_model, settings.models.sub_api_base))
        writer: TrajectoryWriter | None = None
        session = models
        # Opened first: pruning old runs (the trajectory writer's) must not take the state away.
        restore_fd, no_state = continuing.earlier.state() if continuing is not None else (None, None)
        state: RunState | None = None
        try:
            loaded = await _within(budget, "loading the sources", request.inputs.load)
            # Opened after loading, so a trace file written inside the source never feeds itself.
            writer = TrajectoryWriter(trace, warn=lambda message: sink.emit(Notice(message, level="warning")))
            sink = Fanout(*self._sinks, writer)
            for line in loaded.skipped_lines():
                sink.emit(Notice(line))
            sink.emit(Notice(f"loaded {len(loaded.files):,} file(s), {loaded.chars:,} characters"))
            state = await self._state(request, continuing, loaded, budget, writer.path, restore_fd, sink)
            restore_fd = None  # the state owns it now
            if no_state is not None:
                sink.emit(Notice(f"{no_state}; going on without its variables", level="warning"))
            wanted = redaction_wanted(request.redact, settings.models.model, settings.models.sub_model)
            files = await _within(budget, "scanning for secrets", lambda: _redacted(loaded, wanted, sink))
            if session is None:
                session = ModelSession(settings, self._notify(sink), self._client_factory(request.limits))
            config = RunConfig(
                question=question,
                root=session.root_settings(budget.remaining_time()),
                sub=session.sub_settings(budget.remaining_time()),
                limits=request.limits,
                sources=loaded.sources,
                profile=settings.profile,
                strategy=request.strategy,
                code_cache_dir=self._code_cache_dir,
                repository=asdict(loaded.repository) if loaded.repository else None,
                check=replace(check, files=loaded.files) if check is not None else None,
                sub_limiter=sub_limiter,
                state=state,
            )
            cache = None if request.no_cache else SubcallCache(cache_dir(self._environ) / "subcalls")
            run = Run(config, sink, session.make_client, budget, cache)
            try:
                result = await run.answer(files)
            finally:
                if cache is not None:
                    cache.close()
            return _ask_result(result, writer.path)
        except LimitError as exc:  # before the run started (loading, a local server): a result too
            return self._early_result(exc, "limit", settings, budget, writer)
        except RlmError as exc:
            ran = exc.result if isinstance(exc.result, RunResult) else None
            if ran is not None:
                exc.result = _ask_result(ran, writer.path if writer else None)
            else:
                exc.result = self._early_result(exc, "error", settings, budget, writer)
            raise
        finally:
            if models is None and session is not None:
                session.close()
            if state is not None:
                state.close()
            elif restore_fd is not None:
                os.close(restore_fd)
            if writer is not None:
                writer.close()

    async def _state(
        self,
        request: AskRequest,
        continuing: Continuing | None,
        loaded: LoadedSources,
        budget: Budget,
        trace: Path,
        restore_fd: int | None,
        sink: Sink,
    ) -> RunState:
        """The run's `origin` record, a warning when the earlier run's sources changed since, and
        its REPL state: kept next to the trajectory, restored from the earlier run."""
        fingerprint = await _within(budget, "hashing the sources", lambda: digest(loaded.files))
        earlier = continuing.earlier if continuing is not None else None
        resumes = continuing is not None and continuing.how == "resumes"
        follows = earlier.origin.get("follows") if resumes and earlier else (str(earlier.trajectory.path) if earlier else None)
        sink.emit(Origin(continuing_module.record(request), fingerprint, follows, str(earlier.trajectory.path) if resumes and earlier else None))
        if earlier is None or continuing is None:
            return RunState(trace)
        before = earlier.origin.get("digest")
        if continuing.same_sources and isinstance(before, str) and before != fingerprint:
            sink.emit(Notice(f"the sources of run {earlier.id} have changed since it ran; going on with them as they are now", level="warning"))
        if earlier.trajectory.damaged:
            sink.emit(Notice(f"{earlier.trajectory.path}: skipped {earlier.trajectory.damaged} damaged line(s)", level="warning"))
        history = continuing.history
        return RunState(trace, restore_fd, lambda restored: history(restored, budget.summary(1)))

    @staticmethod
    def _early_result(
        exc: RlmError, status: str, settings: Settings, budget: Budget, writer: TrajectoryWriter | None
    ) -> AskResult:
        """The result of a request that ended before its run began."""
        models = settings.models
        trace = writer.path if writer else None
        return AskResult(None, status, models.model, models.sub_model, duration_s=budget.elapsed(), trace_file=trace, error=str(exc))

    # -- a person at the REPL, and inspection -------------------------------------------------

    @contextlib.asynccontextmanager
    async def repl(self, request: ReplRequest) -> AsyncIterator[Session]:
        """A worker over the inputs, as the root model would have it, for a person to type into.

        Without a configured model the REPL still starts; `llm_query` then says how to set one.
        """
        sink = Fanout(*self._sinks)
        loaded = request.inputs.load()
        for line in loaded.skipped_lines():
            sink.emit(Notice(line))
        session: ModelSession | None = None
        make_client = self._client_factory(Limits())
        try:
            session = ModelSession(self.settings(request.models), self._notify(sink), make_client)
            sub = session.sub_settings()
        except ModelError as exc:
            why = f"llm_query needs a model: {exc}"
            sub, make_client = ModelSettings("(no model)"), lambda settings: Unconfigured(why)
            sink.emit(Notice(why, level="warning"))
        try:
            named = session.choice.sub_model if session is not None else sub.model  # `local`, not its server's name
            files = _redacted(loaded, redaction_wanted(request.redact, named, named), sink)
            config = RunConfig(question="", root=sub, sub=sub, limits=Limits(cell_timeout=request.cell_timeout))
            async with Run(config, sink, make_client).session(files) as repl:
                yield repl
        finally:
            if session is not None:
                session.close()

    def inspect(self, inputs: Inputs) -> Inspection:
        """What the context would hold; no model is resolved or called."""
        return inspect_sources(inputs.load())


class Unconfigured:
    """The model behind llm_query when none is configured: every call says how to configure one."""

    def __init__(self, why: str) -> None:
        self.model = "(no model)"
        self._why = why

    def context_window(self) -> int | None:
        return None

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        raise ModelError(self._why)


def _sync(work: Coroutine[None, None, AskResult]) -> AskResult:
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None


def _redacted(loaded: LoadedSources, wanted: bool, sink: Sink) -> Mapping[str, str]:
    """The files with their secrets replaced by markers, said on stderr and in the trajectory."""
    if not wanted:
        return loaded.files
    redaction = redact(loaded.files, cache_dir() / "secrets")
    sink.emit(Notice(redaction.summary()))
    sink.emit(Redacted(redaction.summary(), redaction.records()))
    return redaction.files


def _ask_result(result: RunResult, trace: Path | None) -> AskResult:
    verdict = result.verdict
    return AskResult(
        answer=result.answer,
        status=result.status,
        model=result.model,
        sub_model=result.sub_model,
        iterations=result.iterations,
        subcalls=result.subcalls,
        usage=result.usage,
        duration_s=result.duration_s,
        trace_file=trace,
        error=result.error,
        value=verdict.value if verdict is not None else None,
        typed=verdict is not None and verdict.typed,
        sources=verdict.sources if verdict is not None else None,
    )


async def _within(budget: Budget, doing: str, work: Callable[[], T]) -> T:
    """Run blocking `work` in a daemon thread, within the run's time budget.

    A daemon thread, not the loop's executor: on a timeout the process may exit while the work
    (a huge directory, a stalled FIFO) is still going, instead of waiting for it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def target() -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = work()
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name="rlm-load", daemon=True).start()
    try:
        async with asyncio.timeout(budget.remaining_time()):
            return await future
    except TimeoutError:
        raise LimitError(f"{budget.timeout_text()} while {doing}") from None
