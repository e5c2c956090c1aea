"""Sub-calls from the worker, run by the host: concurrently, budgeted, cached, each one traced.

One `llm_request` from a cell may carry one prompt or a whole batch; every prompt becomes its own
task under a run-wide semaphore of `--concurrency`, so a 64-prompt batch with concurrency 16 takes
about four model latencies, not sixty-four. A failure stays in its slot as an error result.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from rlm_cli.budget import Budget
from rlm_cli.errors import ContextWindowError, LimitError, ModelError
from rlm_cli.events import Sink, Subcall, SubcallStart, Usage
from rlm_cli.model_client import Completion, ModelClient
from rlm_cli.worker.protocol import LlmRequest

# A sub-RLM: (question, context text, depth) -> answer.
Recurse = Callable[[str, str, int], Awaitable[str]]
CHARS_PER_TOKEN = 4  # a rough, deliberately generous estimate for the window pre-check
PREVIEW_CHARS = 600  # of each prompt and reply kept in the trajectory for viewers
TRUNCATED_NOTE = "\n[rlm: this answer was cut off at the sub-model's output limit; ask for less, or split the question]"


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

    async def handle(self, request: LlmRequest, cell_id: int | None, depth: int) -> list[dict[str, str]]:
        """Answer every prompt of the request concurrently, in order; errors stay in their slots."""
        contexts = request.contexts or [None] * len(request.prompts)
        if request.recursive and self._recurse is not None and depth + 1 < self._budget.limits.max_depth:
            jobs = [self._sub_rlm(p, c or "", cell_id, depth + 1) for p, c in zip(request.prompts, contexts)]
        else:
            prompts = [p if c is None else f"{p}\n\n{c}" for p, c in zip(request.prompts, contexts)]
            client = self._client_for(request.model)
            jobs = [self._one(client, p, cell_id, depth + 1) for p in prompts]
        return list(await asyncio.gather(*jobs))

    async def _one(self, client: ModelClient, prompt: str, cell_id: int | None, depth: int) -> dict[str, str]:
        call_id = next(self._ids)
        started = time.monotonic()
        key = (client.model, prompt)
        cached = key in self._cache
        self._sink.emit(SubcallStart(call_id, cell_id, depth, client.model, len(prompt)))
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
            self._emit(call_id, cell_id, depth, client.model, prompt, "", completion, started, cached, str(exc))
            return {"error": str(exc)}
        self._emit(call_id, cell_id, depth, client.model, prompt, text, completion, started, cached, None)
        return {"text": text}

    async def _call(self, client: ModelClient, prompt: str) -> Completion:
        window = self._window(client)
        if window is not None and len(prompt) // CHARS_PER_TOKEN > window:
            raise ContextWindowError(
                f"the prompt of {len(prompt):,} characters (~{len(prompt) // CHARS_PER_TOKEN:,} tokens) is larger"
                f" than {client.model}'s window of {window:,} tokens; split it, e.g. with context.chunks()"
            )
        async with self._semaphore:
            completion = await client.complete([{"role": "user", "content": prompt}])
        self._budget.charge(completion.usage)
        return completion

    def _window(self, client: ModelClient) -> int | None:
        if client.model not in self._windows:
            self._windows[client.model] = client.context_window()
        return self._windows[client.model]

    async def _sub_rlm(self, question: str, context: str, cell_id: int | None, depth: int) -> dict[str, str]:
        assert self._recurse is not None
        try:
            self._budget.take_subcall()
            return {"text": await self._recurse(question, context, depth)}
        except (ModelError, LimitError) as exc:
            return {"error": str(exc)}

    def _emit(
        self,
        call_id: int,
        cell_id: int | None,
        depth: int,
        model: str,
        prompt: str,
        text: str,
        completion: Completion | None,
        started: float,
        cached: bool,
        error: str | None,
    ) -> None:
        usage = completion.usage if completion else Usage()
        faults = completion.faults if completion else ()
        self._sink.emit(
            Subcall(
                id=call_id,
                cell_id=cell_id,
                depth=depth,
                model=model,
                prompt_chars=len(prompt),
                response_chars=len(text),
                usage=usage,
                duration_s=time.monotonic() - started,
                cached=cached,
                error=error,
                faults=faults,
                prompt_preview=prompt[:PREVIEW_CHARS],
                response_preview=text[:PREVIEW_CHARS],
            )
        )
