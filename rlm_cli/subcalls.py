"""Sub-calls from the worker, run by the host: concurrently, budgeted, cached, each one traced.

One `llm_request` from a cell may carry one prompt or a whole batch; every prompt becomes its own
task under a run-wide semaphore of `--concurrency`, so a 64-prompt batch with concurrency 16 takes
about four model latencies, not sixty-four. A failure stays in its slot as an error result.
A recursive sub-RLM (`rlm_query` while depth allows) is a sub-call too: it is traced as a
`subcall` of kind `rlm`, and everything it does carries its id as `parent`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rlm_cli.budget import Budget
from rlm_cli.errors import ContextWindowError, LimitError, ModelError
from rlm_cli.events import Sink, Subcall, SubcallStart, Usage
from rlm_cli.model_client import Completion, ModelClient
from rlm_cli.units import CHARS_PER_TOKEN
from rlm_cli.worker.protocol import LlmRequest

TRUNCATED_NOTE = "\n[rlm: this answer was cut off at the sub-model's output limit; ask for less, or split the question]"


@dataclass(frozen=True)
class SubResult:
    """One prompt's outcome: a text or an error, and what it cost (a sub-RLM: its whole subtree)."""

    text: str | None = None
    error: str | None = None
    usage: Usage = Usage()

    def wire(self) -> dict[str, str]:
        """The result as the worker receives it."""
        return {"error": self.error} if self.error is not None else {"text": self.text or ""}


@dataclass(frozen=True)
class Scope:
    """Where a request comes from: the cell, the depth of its loop, and the sub-RLM it runs in."""

    cell_id: int | None
    depth: int = 0
    parent: int | None = None


# A sub-RLM: (question, context text, depth, its subcall id) -> its answer or error, and the
# usage of its whole subtree.
Recurse = Callable[[str, str, int, int], Awaitable[SubResult]]


class SubcallRunner:
    """Turns `llm_request`s into model calls; one per run, shared by every cell and depth."""

    def __init__(
        self,
        client_for: Callable[[str | None], ModelClient],
        budget: Budget,
        sink: Sink,
        recurse: Recurse | None = None,
    ) -> None:
        self._client_for = client_for
        self._budget = budget
        self._sink = sink
        self._recurse = recurse
        self._semaphore = asyncio.Semaphore(max(1, budget.limits.concurrency))
        self._ids = itertools.count(1)
        self._cache: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._windows: dict[str, int | None] = {}

    async def handle(self, request: LlmRequest, scope: Scope) -> list[SubResult]:
        """Answer every prompt of the request concurrently, in order; errors stay in their slots."""
        contexts = request.contexts or [None] * len(request.prompts)
        if request.recursive and self._recurse is not None and scope.depth + 1 < self._budget.limits.max_depth:
            jobs = [self._sub_rlm(p, c or "", scope) for p, c in zip(request.prompts, contexts)]
        else:
            prompts = [p if c is None else f"{p}\n\n{c}" for p, c in zip(request.prompts, contexts)]
            client = self._client_for(request.model)
            jobs = [self._one(client, p, scope) for p in prompts]
        return list(await asyncio.gather(*jobs))

    async def _one(self, client: ModelClient, prompt: str, scope: Scope) -> SubResult:
        call_id = next(self._ids)
        started = time.monotonic()
        key = (client.model, prompt)
        cached = key in self._cache
        self._sink.emit(SubcallStart(call_id, scope.cell_id, scope.depth + 1, client.model, len(prompt), parent=scope.parent))
        completion: Completion | None = None
        try:
            if cached:
                text = await asyncio.shield(self._cache[key])
            else:
                self._budget.take_subcall()
                self._budget.check_cost()
                future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                self._cache[key] = future
                try:
                    completion = await self._call(client, prompt)
                    if not completion.text.strip():
                        raise ModelError(f"{client.model} returned an empty reply")
                except BaseException as exc:
                    del self._cache[key]
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                        future.exception()  # mark it retrieved: waiters re-raise it themselves
                    raise
                text = completion.text
                if completion.finish_reason == "length":
                    text += TRUNCATED_NOTE
                future.set_result(text)
        except (ModelError, LimitError) as exc:
            result = SubResult(error=str(exc), usage=completion.usage if completion else Usage())
        else:
            result = SubResult(text=text, usage=completion.usage if completion else Usage())
        self._sink.emit(
            Subcall(
                id=call_id,
                cell_id=scope.cell_id,
                depth=scope.depth + 1,
                model=client.model,
                prompt_chars=len(prompt),
                response_chars=len(result.text or ""),
                usage=result.usage,
                duration_s=time.monotonic() - started,
                cost=result.usage.cost_usd,
                cached=cached,
                error=result.error,
                faults=completion.faults if completion else (),
                parent=scope.parent,
            )
        )
        return result

    async def _call(self, client: ModelClient, prompt: str) -> Completion:
        window = self._window(client)
        if window is not None and len(prompt) // CHARS_PER_TOKEN > window:
            raise ContextWindowError(
                f"the prompt of {len(prompt):,} characters (~{len(prompt) // CHARS_PER_TOKEN:,} tokens) is larger"
                f" than {client.model}'s window of {window:,} tokens; split it, e.g. with context.chunks()"
            )
        async with self._semaphore:
            completion = await client.complete([{"role": "user", "content": prompt}])
        self._budget.charge(completion.usage, client.model)
        return completion

    def _window(self, client: ModelClient) -> int | None:
        if client.model not in self._windows:
            self._windows[client.model] = client.context_window()
        return self._windows[client.model]

    async def _sub_rlm(self, question: str, context: str, scope: Scope) -> SubResult:
        assert self._recurse is not None
        call_id = next(self._ids)
        started = time.monotonic()
        model = self._client_for(None).model
        depth = scope.depth + 1
        self._sink.emit(SubcallStart(call_id, scope.cell_id, depth, model, len(question) + len(context), "rlm", scope.parent))
        try:
            self._budget.take_subcall()
        except LimitError as exc:
            result = SubResult(error=str(exc))
        else:
            result = await self._recurse(question, context, depth, call_id)
        self._sink.emit(
            Subcall(
                id=call_id,
                cell_id=scope.cell_id,
                depth=depth,
                model=model,
                prompt_chars=len(question) + len(context),
                response_chars=len(result.text or ""),
                usage=result.usage,
                duration_s=time.monotonic() - started,
                cost=result.usage.cost_usd,
                error=result.error,
                kind="rlm",
                parent=scope.parent,
            )
        )
        return result
