"""`rlm ask` as a function: options in, an outcome out; the CLI only parses and prints.

This is where option strings become objects (model settings, limits, load options, sinks), where
sources are loaded and reported, where the trajectory file is placed, and where every way a run
can end becomes an `AskOutcome` with its exit code.
"""

from __future__ import annotations

import asyncio
import codeop
import functools
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlm_cli.budget import Limits
from rlm_cli.config import ModelChoice, cache_dir, parse_size, resolve_models
from rlm_cli.engine import Run, RunConfig, RunResult, warm_up
from rlm_cli.errors import Interrupted, ModelError, RlmError, UsageError
from rlm_cli.events import Event, Fanout, Notice, Sink
from rlm_cli.local.serve import ModelServers
from rlm_cli.model_client import Completion, LiteLLMClient, ModelClient, ModelSettings
from rlm_cli.sources.loader import LoadedSources, LoadOptions, Skipped, load_sources
from rlm_cli.trace.console import console_trace
from rlm_cli.trace.trajectory import TrajectoryWriter
from rlm_cli.worker.process import CellOutcome

KEEP_TRAJECTORIES = 50
MAX_QUESTION_CHARS = 100_000


@dataclass(frozen=True)
class Inputs:
    """Which sources, and how their directories are filtered: the same for ask, repl and inspect."""

    sources: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    use_gitignore: bool = True
    max_file_size: str = "5M"

    def load(self) -> LoadedSources:
        options = LoadOptions(self.include, self.exclude, self.use_gitignore, parse_size(self.max_file_size))
        return load_sources(self.sources, options)


@dataclass(frozen=True)
class ModelFlags:
    """The model options as given; `resolve()` fills the gaps from environment and config."""

    model: str | None = None
    sub_model: str | None = None
    api_base: str | None = None
    sub_api_base: str | None = None

    def resolve(self) -> ModelChoice:
        return resolve_models(self.model, self.sub_model, self.api_base, self.sub_api_base)


@dataclass(frozen=True)
class AskRequest:
    inputs: Inputs
    question: str
    models: ModelFlags = ModelFlags()
    max_iterations: int = 30
    max_depth: int = 1
    max_subcalls: int | None = None
    max_cost: float | None = None
    timeout: float | None = None
    cell_timeout: float = 300.0
    concurrency: int = 16
    trace: Path | None = None


@dataclass(frozen=True)
class AskOutcome:
    answer: str | None
    status: str  # ok | limit | error
    exit_code: int
    error: str | None
    trace_file: Path | None
    result: RunResult | None = None
    model: str | None = None
    sub_model: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The `--json` object of DESIGN.md."""
        r = self.result
        return {
            "answer": self.answer,
            "status": self.status,
            "model": self.model,
            "sub_model": self.sub_model,
            "iterations": r.iterations if r else 0,
            "subcalls": r.subcalls if r else 0,
            "usage": {
                "input_tokens": r.usage.input_tokens if r else 0,
                "output_tokens": r.usage.output_tokens if r else 0,
                "cost_usd": r.usage.cost_usd if r else None,
            },
            "duration_s": round(r.duration_s, 3) if r else 0.0,
            "trace_file": str(self.trace_file) if self.trace_file else None,
            "error": self.error,
        }


def run_ask(request: AskRequest, *, quiet: bool) -> AskOutcome:
    """Resolve models, load sources, run, and say how it ended; never raises an `RlmError`."""
    trace_file: Path | None = None
    writer: TrajectoryWriter | None = None
    trace = None
    models = None
    servers: ModelServers | None = None
    try:
        question = _check_question(request.question)
        models = request.models.resolve()
        warm_up()
        loaded = request.inputs.load()
        # Opened after loading, so a trace file written inside the source never feeds itself.
        trace_file = request.trace or _default_trace_path()
        writer = _open_trajectory(trace_file)
        trace = None if quiet else console_trace()
        sink = Fanout(*(s for s in (trace, writer) if s is not None))
        _report_skipped(loaded, sink)
        servers = ModelServers(lambda message: sink.emit(Notice(message)))
        root = servers.settings(models.model, models.api_base, root=True)
        sub = servers.settings(models.sub_model, models.sub_api_base, root=False)
        limits = Limits(
            max_iterations=request.max_iterations,
            max_depth=request.max_depth,
            max_subcalls=request.max_subcalls,
            max_cost=request.max_cost,
            timeout=request.timeout,
            cell_timeout=request.cell_timeout,
            concurrency=request.concurrency,
        )
        config = RunConfig(
            question=question,
            root=root,
            sub=sub,
            limits=limits,
            sources=loaded.sources,
            profile=os.environ.get("RLM_PROMPT_PROFILE") or None,
            repository=asdict(loaded.repository) if loaded.repository else None,
        )
        try:
            result = asyncio.run(Run(config, sink).answer(loaded.files))
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        code = 0 if result.status == "ok" and result.answer is not None else 5
        return AskOutcome(result.answer, result.status, code, result.error, trace_file, result, models.model, models.sub_model)
    except RlmError as exc:
        return AskOutcome(
            None, "error", exc.exit_code, str(exc), trace_file if writer else None,
            model=models.model if models else None, sub_model=models.sub_model if models else None,
        )
    finally:
        if servers is not None:
            servers.close()
        if trace is not None:
            trace.close()
        if writer is not None:
            writer.close()


def _check_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise UsageError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UsageError(
            f"the question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}"
            " (put long material in a source, e.g. --add FILE)"
        )
    return question


def _default_trace_path() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cache_dir() / "runs" / f"{stamp}-{os.getpid()}.jsonl"


def _open_trajectory(path: Path) -> TrajectoryWriter:
    try:
        writer = TrajectoryWriter(path)
    except OSError as exc:
        raise UsageError(f"cannot write the trajectory to {path}: {exc.strerror or exc}") from exc
    runs = path.parent
    if runs == _default_trace_path().parent:  # prune only our own directory, never a user's
        old = sorted(runs.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)[:-KEEP_TRAJECTORIES]
        for stale in old:
            stale.unlink(missing_ok=True)
    return writer


def _report_skipped(loaded: LoadedSources, sink: Sink) -> None:
    """One line per reason, with a few examples, so a big tree does not flood stderr."""
    by_reason: dict[str, list[Skipped]] = defaultdict(list)
    for skipped in loaded.skipped:
        by_reason[skipped.reason].append(skipped)
    for reason, items in by_reason.items():
        examples = ", ".join(s.path for s in items[:3]) + (", ..." if len(items) > 3 else "")
        sink.emit(Notice(f"skipped {len(items)} ({reason}): {examples}"))
    sink.emit(Notice(f"loaded {len(loaded.files):,} file(s), {sum(map(len, loaded.files.values())):,} characters"))


# -- rlm repl ------------------------------------------------------------------------------------

REPL_OUTPUT_CHARS = 200_000  # a person can scroll; the model's cap does not apply


@dataclass(frozen=True)
class ReplRequest:
    inputs: Inputs
    models: ModelFlags = ModelFlags()
    cell_timeout: float = 300.0


class _Unconfigured:
    """The model behind llm_query when none is configured: every call says how to configure one."""

    def __init__(self, why: str) -> None:
        self.model = "(no model)"
        self._why = why

    def context_window(self) -> int | None:
        return None

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        raise ModelError(self._why)


class _Notices:
    """The REPL's only trace: notices (skipped files, isolation warnings) as lines on stderr."""

    def emit(self, event: Event) -> None:
        if isinstance(event, Notice):
            sys.stderr.write(("warning: " if event.level == "warning" else "") + event.message + "\n")


def _read_line(prompt: str) -> str:
    """`input()` on a terminal (line editing); from a pipe, the prompt goes to stderr, not stdout."""
    if sys.stdin.isatty():
        return input(prompt)
    sys.stderr.write(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def run_repl(request: ReplRequest, read: Callable[[str], str] = _read_line) -> int:
    """A person at the REPL the root model uses: same `context`, same functions; returns an exit code."""
    sink = _Notices()
    servers = ModelServers(lambda message: sink.emit(Notice(message)))
    try:
        loaded = request.inputs.load()
        _report_skipped(loaded, sink)
        try:
            models = request.models.resolve()
            sub = servers.settings(models.sub_model, models.sub_api_base, root=False)
            make_client: Callable[[ModelSettings], ModelClient] = LiteLLMClient
        except ModelError as exc:
            sub, why = ModelSettings("(no model)"), f"llm_query needs a model: {exc}"
            make_client = lambda settings: _Unconfigured(why)  # noqa: E731
            sink.emit(Notice(why, level="warning"))
        config = RunConfig(question="", root=sub, sub=sub, limits=Limits(cell_timeout=request.cell_timeout))
        run = Run(config, sink, make_client)
        asyncio.run(_repl(run, loaded, read))
        return 0
    except RlmError as exc:
        sys.stderr.write(f"rlm: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return Interrupted.exit_code
    finally:
        servers.close()


async def _repl(run: Run, loaded: LoadedSources, read: Callable[[str], str]) -> None:
    async with run.worker(loaded.files) as worker:
        summary = worker.summary
        sys.stderr.write(
            f"rlm repl: `context` holds {summary.files:,} file(s), {summary.chars:,} characters;"
            f" llm_query uses {run.config.sub.model}. Ctrl-D leaves.\n"
        )
        cell_id = 0
        while True:
            try:
                code = await asyncio.to_thread(_read_cell, read)
            except EOFError:
                sys.stderr.write("\n")
                return
            if not code.strip():
                continue
            cell_id += 1
            outcome = await worker.execute(
                cell_id,
                code,
                timeout=run.config.limits.cell_timeout,
                max_output_chars=REPL_OUTPUT_CHARS,
                on_llm=functools.partial(run.runner.handle, cell_id=cell_id, depth=0),
            )
            sys.stdout.write(outcome.output)
            for note in _repl_notes(outcome):
                sys.stderr.write(note + "\n")
            sys.stdout.flush()


def _read_cell(read: Callable[[str], str]) -> str:
    """One statement, however many lines it takes, as Python's own REPL reads it."""
    lines = [read(">>> ")]
    while True:
        try:
            if codeop.compile_command("\n".join(lines), "<repl>", "exec") is not None:
                return "\n".join(lines)
        except (SyntaxError, ValueError, OverflowError):
            return "\n".join(lines)  # the worker shows the error as a cell would
        lines.append(read("... "))


def _repl_notes(outcome: CellOutcome) -> list[str]:
    notes = []
    if outcome.timed_out:
        notes.append("[interrupted: the cell ran past --cell-timeout]")
    if outcome.crash:
        notes.append(f"[the REPL process died: it {outcome.crash}; restarted with `context`]")
    if outcome.final is not None:
        notes.append(f"[FINAL: {outcome.final[:200]}]")
    return notes
