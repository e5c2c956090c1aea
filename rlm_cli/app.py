"""`rlm ask` as a function: options in, an outcome out; the CLI only parses and prints.

This is where option strings become objects (model settings, limits, load options, sinks), where
sources are loaded and reported, where the trajectory file is placed, and where every way a run
can end becomes an `AskOutcome` with its exit code.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlm_cli.budget import Limits
from rlm_cli.config import cache_dir, parse_size, resolve_models
from rlm_cli.engine import Run, RunConfig, RunResult, warm_up
from rlm_cli.errors import Interrupted, RlmError, UsageError
from rlm_cli.events import Fanout, Notice, Sink
from rlm_cli.local.serve import ModelServers
from rlm_cli.sources.loader import LoadedSources, LoadOptions, Skipped, load_sources
from rlm_cli.trace.console import console_trace
from rlm_cli.trace.trajectory import TrajectoryWriter

KEEP_TRAJECTORIES = 50
MAX_QUESTION_CHARS = 100_000


@dataclass(frozen=True)
class AskRequest:
    sources: tuple[str, ...]
    question: str
    model: str | None = None
    sub_model: str | None = None
    api_base: str | None = None
    sub_api_base: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    use_gitignore: bool = True
    max_file_size: str = "5M"
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
        models = resolve_models(request.model, request.sub_model, request.api_base, request.sub_api_base)
        warm_up()
        options = LoadOptions(
            includes=request.include,
            excludes=request.exclude,
            use_gitignore=request.use_gitignore,
            max_file_size=parse_size(request.max_file_size),
        )
        loaded = load_sources(request.sources, options)
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
            code_cache_dir=cache_dir() / "codegraph",
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
