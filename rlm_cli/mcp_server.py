"""`rlm mcp`: the library API as an MCP server over stdio, for coding agents and editors.

Tools: `ask` (a question about a file, directory or git URL, with the main options of `rlm ask`),
`inspect` (what the context would hold; no model call), `runs` (recent runs) and `show` (one
run's cells and answer, from its trajectory). Each `ask` goes through
`Rlm.ask_async`, so the worker sandbox, budgets and trajectory are those of `rlm ask`; the
server holds no keys beyond the environment it was started with. A run's events feed a
`Progress` sink that sends MCP progress notifications (turns, sub-calls done/total); a cancelled
call cancels its run, which stops its worker before the call is given up.

Built on the official MCP Python SDK (the `mcp` extra), imported only here and only when the
command runs. stdout is the protocol channel: nothing in a run writes to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from rlm_cli import __version__
from rlm_cli.api import AskRequest, AskResult, Inputs, Limits, ModelFlags, Rlm
from rlm_cli.errors import RlmError
from rlm_cli.events import Event, RootResponse, Sink, Subcall, SubcallStart

T = TypeVar("T")
Report = Callable[[float, float | None, str | None], Awaitable[None]]
MakeRlm = Callable[[Sequence[Sink]], Rlm]

DEFAULTS = Limits()

INSTRUCTIONS = """\
rlm answers questions about inputs far larger than a model's context window (a big log, a book, \
a whole repository) with a Recursive Language Model: the input lives in a sandboxed Python REPL \
and a root model writes code to read it. Use `ask` for a question about a file, a directory or a \
git URL; `inspect` shows what would be loaded, without a model call; `runs` lists recent runs and `show` replays one (its cells and answer)."""


class Progress:
    """A sink that turns a run's events into progress reports: turns, sub-calls done/total.

    `emit` may be called from any thread; the reports are sent by `pump()`, one per change,
    coalesced when events come faster than the client reads them.
    """

    def __init__(self, report: Report, max_turns: int) -> None:
        self._report = report
        self._max_turns = max_turns
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.turns = self.started = self.done = self.steps = 0

    def emit(self, event: Event) -> None:
        if isinstance(event, RootResponse) and event.depth == 0:
            self.turns = event.iteration
        elif isinstance(event, SubcallStart):
            self.started += 1
        elif isinstance(event, Subcall):
            self.done += 1
        else:
            return
        self.steps += 1
        self._loop.call_soon_threadsafe(self._changed.set)

    def message(self) -> str:
        return f"turn {self.turns}/{self._max_turns}, sub-calls {self.done}/{self.started} done"

    async def pump(self) -> None:
        """Send a report after each change, until cancelled.

        A wake-up can come after its change was already reported (the event is set from another
        thread after the counter moved), so a report goes out only when the count grew: MCP
        requires progress to increase with every notification.
        """
        sent = 0
        while True:
            await self._changed.wait()
            self._changed.clear()
            steps = self.steps
            if steps > sent:
                sent = steps
                await self._report(float(steps), None, self.message())


async def run_to_end(work: Coroutine[Any, Any, T]) -> T:
    """Await `work` in a task of its own; if the caller is cancelled, cancel the work and wait
    for its cleanup (worker stopped, scratch removed) before giving up.

    The SDK cancels a handler through an anyio scope, which would cut the run's own cleanup
    short; a separate task, awaited under a shield, lets it finish.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
        raise


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _answer(result: AskResult) -> CallToolResult:
    """The answer as text (sources included), the `--json` object as structured content; a run
    a limit ended is an error result carrying the partial answer."""
    text = result.text()
    if result.status != "ok" or text is None:
        stopped = f"stopped: {result.error or 'the run ended without an answer'}"
        text = f"{stopped}\n\npartial answer:\n{text}" if text else stopped
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result.as_json(), is_error=True)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result.as_json())


def build_server(defaults: ModelFlags = ModelFlags(), make_rlm: MakeRlm = Rlm) -> MCPServer:
    """The MCP server; `defaults` are the models a call gets when it names none."""
    server: MCPServer = MCPServer("rlm", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    @server.tool(description="Answer a question about a file, a directory or a git repository (path or URL) with a Recursive Language Model.")
    async def ask(
        source: Annotated[str, Field(description="A file, a directory, or a git repository (path or URL).")],
        question: Annotated[str, Field(description="The question.")],
        ctx: Context,
        add: Annotated[list[str] | None, Field(description="More sources in the same context.")] = None,
        include: Annotated[list[str] | None, Field(description="Only files matching these globs.")] = None,
        exclude: Annotated[list[str] | None, Field(description="Drop files matching these globs.")] = None,
        model: Annotated[str | None, Field(description="Root model (a litellm model string, or local).")] = None,
        sub_model: Annotated[str | None, Field(description="Model for sub-calls; default: the root model.")] = None,
        api_base: Annotated[str | None, Field(description="OpenAI-compatible server URL for root and sub-calls.")] = None,
        sub_api_base: Annotated[str | None, Field(description="A different server URL for sub-calls.")] = None,
        max_iterations: Annotated[int, Field(ge=1, description="Root model turns.")] = DEFAULTS.max_iterations,
        max_depth: Annotated[int, Field(ge=1, description="Recursion depth; 1 = sub-calls are plain model calls.")] = DEFAULTS.max_depth,
        max_subcalls: Annotated[int | None, Field(ge=0, description="Sub-calls allowed in the whole run.")] = None,
        max_cost: Annotated[float | None, Field(ge=0, description="Stop when the run has cost this much (USD).")] = None,
        timeout: Annotated[float | None, Field(gt=0, description="Seconds for the whole run.")] = None,
        cell_timeout: Annotated[float, Field(gt=0, description="Seconds for one code cell.")] = DEFAULTS.cell_timeout,
        schema: Annotated[
            dict[str, Any] | None, Field(description="A JSON Schema the answer must satisfy; the answer is then JSON.")
        ] = None,
        cite: Annotated[bool, Field(description="Follow the answer with file:line sources, each checked.")] = False,
    ) -> CallToolResult:
        flags = ModelFlags(
            model or defaults.model,
            sub_model or defaults.sub_model,
            api_base or defaults.api_base,
            sub_api_base or defaults.sub_api_base,
        )
        limits = Limits(max_iterations, max_depth, max_subcalls, max_cost, timeout, cell_timeout)
        progress = Progress(ctx.report_progress, max_iterations)
        pump = asyncio.ensure_future(progress.pump())
        try:
            request = AskRequest(
                Inputs((source, *(add or ())), tuple(include or ()), tuple(exclude or ())),
                question,
                flags,
                limits,
                schema=schema,
                cite=cite,
            )
            result = await run_to_end(make_rlm([progress]).ask_async(request))
        except RlmError as exc:
            return _error(f"rlm: error: {exc}")
        finally:
            pump.cancel()
        return _answer(result)

    @server.tool(description="What the context of a source would hold: files, skipped files, sizes, languages, symbols. No model call.")
    async def inspect(
        source: Annotated[str, Field(description="A file, a directory, or a git repository (path or URL).")],
        add: Annotated[list[str] | None, Field(description="More sources in the same context.")] = None,
        include: Annotated[list[str] | None, Field(description="Only files matching these globs.")] = None,
        exclude: Annotated[list[str] | None, Field(description="Drop files matching these globs.")] = None,
    ) -> CallToolResult:
        inputs = Inputs((source, *(add or ())), tuple(include or ()), tuple(exclude or ()))
        try:
            found = await asyncio.to_thread(make_rlm(()).inspect, inputs)
        except RlmError as exc:
            return _error(f"rlm: error: {exc}")
        return CallToolResult(content=[TextContent(type="text", text=found.as_text())], structured_content=found.as_json())

    @server.tool(description="Recent runs, newest first: id, status, iterations, sub-calls, tokens, cost, models, sources, question.")
    async def runs(
        limit: Annotated[int, Field(ge=1, description="At most this many runs.")] = 20,
        status: Annotated[str | None, Field(description="Only runs that ended so: ok, limit, error, interrupted.")] = None,
        source: Annotated[str | None, Field(description="Only runs with a source containing this text.")] = None,
    ) -> CallToolResult:
        from rlm_cli.runs.listing import table
        from rlm_cli.runs.store import list_runs, select

        rows = list(select(await asyncio.to_thread(list_runs), status, source))[:limit]
        text = table(rows) if rows else "no runs"
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content={"runs": [r.as_json() for r in rows]})

    @server.tool(description="One recorded run: its question, each cell's code and output, and its answer. RUN is a run id, a trajectory path, or `last`.")
    async def show(
        run: Annotated[str, Field(description="A run id (see `runs`), a trajectory path, or `last`.")],
    ) -> CallToolResult:
        from rlm_cli.runs.records import read_run
        from rlm_cli.runs.store import resolve

        try:
            trajectory = await asyncio.to_thread(lambda: read_run(resolve(run)))
        except RlmError as exc:
            return _error(f"rlm: error: {exc}")
        start = trajectory.first("run_start") or {}
        final = trajectory.last("final") or {}
        end = trajectory.last("run_end") or {}
        cells = [{"code": r.get("code"), "output": r.get("output")} for r in trajectory.records if r.get("type") == "cell" and not r.get("depth")]
        replay = {"id": trajectory.id, "question": start.get("question"), "status": end.get("status", "interrupted"), "answer": final.get("answer"), "cells": cells}
        parts = [f"run {trajectory.id}: {replay['status']}", f"question: {replay['question']}"]
        parts += [f"--- cell {n}\n{c['code']}\n--- output\n{c['output']}" for n, c in enumerate(cells, 1)]
        parts.append(f"answer: {replay['answer']}")
        return CallToolResult(content=[TextContent(type="text", text="\n\n".join(parts))], structured_content=replay)

    return server


def serve_stdio(defaults: ModelFlags = ModelFlags()) -> None:
    """Serve on stdin/stdout until the client closes the connection."""
    anyio.run(build_server(defaults).run_stdio_async)
