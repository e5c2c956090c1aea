"""Sub-calls from the worker, run by the host: concurrently, budgeted, cached, each one traced.

One `llm_request` from a cell may carry one prompt or a whole batch; every prompt becomes its own
task, at most `--max-concurrency` of them calling at once; within that, each provider's adaptive
limiter (`rlm_cli.concurrency`) starts at `--concurrency` and raises the number in flight while the
provider keeps up, so a 64-prompt batch takes about one model latency, not sixty-four. Many runs may share one ceiling `Limiter` instead (`rlm batch` hands every run the one of
its provider), so twenty runs do not each open their own connections. A failure stays in its
slot as an error result.
A recursive sub-RLM (`rlm_query` while depth allows) is a sub-call too: it is traced as a
`subcall` of kind `rlm`, and everything it does carries its id as `parent`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from rlm_cli.budget import Budget
from rlm_cli.errors import ContextWindowError, LimitError, ModelError
from rlm_cli.events import Notice, Sink, Subcall, SubcallStart, Usage
from rlm_cli.model_client import Completion, ModelClient, RetryingClient
from rlm_cli.subcall_cache import SubcallCache
from rlm_cli.units import CHARS_PER_TOKEN
from rlm_cli.worker.protocol import LlmRequest

PREVIEW_CHARS = 600  # of each prompt and reply kept in the trajectory for viewers
MAX_SPLIT_ROUNDS = 3
SPLIT_FILL = 0.7  # how much of the window a piece of a split prompt may fill
COMBINE_HEAD_CHARS = 2_000  # what the combining call is shown of the original prompt
PIECE_PROMPT = (
    "[This is part {i} of {n} of a prompt too long for one call, cut at line boundaries. Answer what it asks"
    " from this part alone; say briefly if this part holds nothing relevant.]\n\n{piece}"
)
COMBINE_PROMPT = (
    "A prompt too long for one call was cut into {n} parts and each part was answered on its own. The prompt"
    " began:\n\n{head}\n\nThe answers to its parts:\n\n{answers}\n\nCombine them into the one answer the"
    " whole prompt asks for."
)
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


# Where sub-calls wait for a slot: an `asyncio.Semaphore`, or anything entered the same way.
Limiter = AbstractAsyncContextManager[object]

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
        cache: SubcallCache | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self._client_for = client_for
        self._disk = cache
        self._budget = budget
        self._sink = sink
        self._recurse = recurse
        # The ceiling (shared by many runs under `rlm batch`): how many a provider gets at once
        # within it is the adaptive limiter's call (rlm_cli.concurrency).
        self._semaphore: Limiter = limiter or asyncio.Semaphore(max(1, budget.limits.max_concurrency))
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
        disk_key = self._disk.key(client.model, _params(client), prompt) if self._disk is not None else None
        kept = self._disk.get(disk_key) if self._disk is not None and disk_key is not None and key not in self._cache else None
        cached = key in self._cache or kept is not None
        self._sink.emit(SubcallStart(call_id, scope.cell_id, scope.depth + 1, client.model, len(prompt), parent=scope.parent))
        completion: Completion | None = None
        pieces = 0
        try:
            if kept is not None:
                text = kept
            elif cached:
                text = await asyncio.shield(self._cache[key])
            else:
                self._budget.take_subcall()
                self._budget.check_cost()
                future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                self._cache[key] = future
                try:
                    completion, pieces = await self._call(client, prompt, call_id)
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
                elif self._disk is not None and disk_key is not None:
                    self._disk.put(disk_key, text)
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
                prompt_preview=prompt[:PREVIEW_CHARS],
                response_preview=(result.text or "")[:PREVIEW_CHARS],
                split_into=pieces or None,
            )
        )
        return result

    async def _call(self, client: ModelClient, prompt: str, call_id: int, rounds: int = 0) -> tuple[Completion, int]:
        """The model's answer to `prompt`, and into how many pieces it was split (0: it fit)."""
        window = self._window(client)
        if window is None or len(prompt) // CHARS_PER_TOKEN <= window:
            return await self._complete(client, prompt), 0
        if rounds >= MAX_SPLIT_ROUNDS:  # the answers of the pieces do not fit either
            raise ContextWindowError(
                f"the prompt of {len(prompt):,} characters (~{len(prompt) // CHARS_PER_TOKEN:,} tokens) is larger"
                f" than {client.model}'s window of {window:,} tokens, even split; ask for shorter answers"
            )
        return await self._split_call(client, prompt, window, call_id, rounds)

    async def _complete(self, client: ModelClient, prompt: str) -> Completion:
        async with self._semaphore:
            completion = await client.complete([{"role": "user", "content": prompt}])
        self._budget.charge(completion.usage, client.model)
        return completion

    async def _split_call(
        self, client: ModelClient, prompt: str, window: int, call_id: int, rounds: int
    ) -> tuple[Completion, int]:
        """A prompt over the window: cut at line boundaries, each piece asked, the answers
        combined by one more call (itself split if the answers are too long for one).
        Every extra call counts against --max-subcalls."""
        room = max(1, int(window * CHARS_PER_TOKEN * SPLIT_FILL))
        pieces = split_lines(prompt, room)
        self._sink.emit(
            Notice(
                f"sub-call {call_id}: the prompt of {len(prompt):,} characters is over {client.model}'s window of"
                f" {window:,} tokens: split into {len(pieces)} pieces, whose answers one more call combines"
            )
        )
        for _ in pieces:
            self._budget.take_subcall()
        parts = await asyncio.gather(
            *[self._complete(client, PIECE_PROMPT.format(i=i, n=len(pieces), piece=piece)) for i, piece in enumerate(pieces, 1)]
        )
        answers = "\n\n".join(f"[part {i}]\n{part.text.strip()}" for i, part in enumerate(parts, 1))
        head = prompt[: min(COMBINE_HEAD_CHARS, room // 4)]
        final, _ = await self._call(client, COMBINE_PROMPT.format(n=len(pieces), head=head, answers=answers), call_id, rounds + 1)
        usage = sum((part.usage for part in parts), final.usage)
        faults = tuple(f for part in (*parts, final) for f in part.faults)
        combined = Completion(
            final.text, usage.input_tokens, usage.output_tokens, usage.cost_usd,
            sum(p.duration_s for p in parts) + final.duration_s, final.finish_reason, faults,
        )
        return combined, len(pieces)

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
                prompt_preview=question[:PREVIEW_CHARS],
                response_preview=(result.text or "")[:PREVIEW_CHARS],
            )
        )
        return result


def split_lines(text: str, max_chars: int) -> list[str]:
    """`text` in pieces of at most `max_chars`, cut after a newline where there is one."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + max_chars)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        pieces.append(text[start:end])
        start = end
    return pieces


def _params(client: ModelClient) -> dict[str, object]:
    """What besides the model name changes its answers, for the cache key. A server on this
    machine is known by its address without the port: a local model gets a new port each start."""
    if isinstance(client, RetryingClient):
        s = client.settings
        base = _LOOPBACK_PORT.sub(r"\1", s.api_base) if s.api_base else None
        return {"api_base": base, "max_tokens": s.max_tokens, "temperature": s.temperature}
    return {"client": type(client).__name__}


_LOOPBACK_PORT = re.compile(r"^(https?://(?:127\.0\.0\.1|localhost|\[::1\])):\d+")
