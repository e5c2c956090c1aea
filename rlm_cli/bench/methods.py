"""The methods a bench compares: `rlm` (this tool, through the library API) and the baselines.

- `direct`: the whole input in one prompt, cut to the root model's window keeping its head and
  tail (the middle is dropped and the prompt says how much).
- `summary`: the paper's summarisation agent: each window-sized chunk is summarised with the
  question in view, then the summaries are summarised again, round after round, until they
  fit one prompt, which then asks the question.
- `retrieval`: BM25 (the `bm25s` library) over passages of the input, and the question over
  the best passages that fit the window, in the input's order.

Baselines talk to a `ModelClient` (the API's `models.root_client()`); each returns a
`MethodResult` with the tokens and cost of every call it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlm_cli.bench.tasks.base import Task
from rlm_cli.errors import RlmError
from rlm_cli.model_client import Closable, ModelClient
from rlm_cli.strategy import DEFAULT_WINDOW, Asked, answer_directly, answer_prompt, ask_fitted, head_and_tail, window_chars

PASSAGE_CHARS = 1_500  # BM25 passage size


@dataclass(frozen=True)
class Prepared:
    """A task's input as methods take it: a path to load (rlm) and the text (baselines)."""

    source: str
    text: Callable[[], str]
    trace: Any = None  # a Path for rlm's trajectory, or None for the default


@dataclass
class MethodResult:
    answer: str | None
    status: str = "ok"  # ok | limit | error
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    calls: int = 0  # model calls (rlm: root turns plus sub-calls)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    name: str

    async def run(self, task: Task, prepared: Prepared) -> MethodResult: ...

    async def aclose(self) -> None:
        """Release what the method holds (its connections), once every task has run."""


class _Tally:
    """The usage of every call one baseline run makes."""

    def __init__(self, client: ModelClient) -> None:
        self.client = client
        self.asked = Asked()
        self.result = MethodResult(answer=None)

    def limit(self) -> int:
        return window_chars(self.client.context_window()) or window_chars(DEFAULT_WINDOW) or 0

    async def ask(self, build: Callable[[int], str], limit: int | None = None) -> str:
        return await ask_fitted(self.client, build, limit or self.limit(), self.asked)

    def settle(self) -> MethodResult:
        r = self.result
        for c in self.asked.completions:
            r.calls += 1
            r.input_tokens += c.input_tokens
            r.output_tokens += c.output_tokens
            if c.cost_usd is not None:
                r.cost_usd = (r.cost_usd or 0.0) + c.cost_usd
        return r


async def _timed(client: ModelClient, body: Callable[[_Tally], Awaitable[str]]) -> MethodResult:
    """Run a baseline, turning an error into a result that says so."""
    tally = _Tally(client)
    started = time.monotonic()
    try:
        tally.result.answer = await body(tally)
    except RlmError as exc:
        tally.result.status, tally.result.error = "error", str(exc)
    tally.result.seconds = time.monotonic() - started
    return tally.settle()


class _Baseline:
    """A baseline owns its client, so the bench closes its connections when every task has run."""

    name = ""

    def __init__(self, client: ModelClient) -> None:
        self.client = client

    async def aclose(self) -> None:
        if isinstance(self.client, Closable):
            await self.client.aclose()


class Direct(_Baseline):
    name = "direct"

    async def run(self, task: Task, prepared: Prepared) -> MethodResult:
        text = prepared.text()

        async def body(tally: _Tally) -> str:  # exactly what `rlm ask --strategy direct` does
            return await answer_directly(self.client, text, task.question, tally.asked)

        return await _timed(self.client, body)


SUMMARY_PROMPT = (
    "Below is part {part} of {parts} of a long text. Someone will later answer this question from your notes "
    "alone: {question}\n\nWrite short notes of everything in this part that could help answer it: copy exact "
    "names, numbers, ids and counts. If nothing in it is relevant, write NONE.\n\n<part>\n{text}\n</part>\n\nNotes:"
)


class Summary(_Baseline):
    name = "summary"

    def __init__(self, client: ModelClient, concurrency: int = 4) -> None:
        super().__init__(client)
        self.concurrency = concurrency

    async def run(self, task: Task, prepared: Prepared) -> MethodResult:
        text = prepared.text()
        gate = asyncio.Semaphore(self.concurrency)

        async def notes(tally: _Tally, piece: str, part: int, parts: int) -> str:
            async with gate:
                return await tally.ask(lambda n: SUMMARY_PROMPT.format(
                    part=part, parts=parts, question=task.question, text=head_and_tail(piece, n)))

        async def body(tally: _Tally) -> str:
            limit = tally.limit()
            material = text
            rounds = 0
            while len(material) > limit and rounds < 8:
                rounds += 1
                pieces = split(material, limit)
                summaries = await asyncio.gather(*(notes(tally, p, i, len(pieces)) for i, p in enumerate(pieces, 1)))
                kept = [s for s in summaries if s.strip().upper().rstrip(".") != "NONE"]
                material = "\n\n".join(kept) or "(no part of the text was relevant)"
            tally.result.extra["rounds"] = rounds
            what = "notes" if rounds else "text"
            return await tally.ask(lambda n: answer_prompt(task.question, head_and_tail(material, n), what))

        return await _timed(self.client, body)


def split(text: str, limit: int) -> list[str]:
    """Consecutive pieces of at most `limit` characters, cut at line ends where possible."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + limit)
        if end < len(text):
            newline = text.rfind("\n", start + limit // 2, end)
            end = newline + 1 if newline != -1 else end
        pieces.append(text[start:end])
        start = end
    return pieces


class Retrieval(_Baseline):
    name = "retrieval"

    def __init__(self, client: ModelClient, passage_chars: int = PASSAGE_CHARS) -> None:
        super().__init__(client)
        self.passage_chars = passage_chars

    def top_passages(self, text: str, question: str, limit: int) -> str:
        """The best BM25 passages for `question` that fit `limit`, in the text's order."""
        import bm25s

        passages = split(text, self.passage_chars)
        if len(passages) <= 1:
            return text[:limit]
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)
        k = min(len(passages), max(1, limit // self.passage_chars + 1))
        ranked, _ = retriever.retrieve(bm25s.tokenize([question], stopwords="en", show_progress=False), k=k,
                                       show_progress=False)
        chosen: list[int] = []
        used = 0
        for index in ranked[0].tolist():
            if used + len(passages[index]) > limit:
                break
            chosen.append(index)
            used += len(passages[index]) + 6
        return "\n[...]\n".join(passages[i] for i in sorted(chosen))

    async def run(self, task: Task, prepared: Prepared) -> MethodResult:
        text = prepared.text()

        async def body(tally: _Tally) -> str:
            return await tally.ask(lambda limit: answer_prompt(
                task.question, self.top_passages(text, task.question, limit), "passages"))

        return await _timed(self.client, body)


BASELINES: dict[str, Callable[[ModelClient], Method]] = {"direct": Direct, "summary": Summary, "retrieval": Retrieval}
RLM_METHODS = ("rlm", "auto")  # this tool with --strategy rlm, and with --strategy auto
METHODS = (*RLM_METHODS, *BASELINES)


class RlmMethod:
    """This tool, through the library API, sharing the caller's model servers; the method's
    name is the `--strategy` it runs with (`rlm` or `auto`)."""

    def __init__(self, rlm: Any, models: Any, flags: Any, limits: Any, strategy: str = "rlm") -> None:
        self.name = strategy
        self.rlm = rlm
        self.models = models
        self.flags = flags
        self.limits = limits
        self.strategy = strategy

    async def aclose(self) -> None:
        """Nothing to release: each run closes its own clients, and the caller the model servers."""

    async def run(self, task: Task, prepared: Prepared) -> MethodResult:
        from rlm_cli.api import AskRequest, Inputs

        request = AskRequest(inputs=Inputs(sources=(prepared.source,)), question=task.question, models=self.flags,
                             limits=self.limits, trace=prepared.trace, strategy=self.strategy)
        started = time.monotonic()
        error: str | None = None
        try:
            result = await self.rlm.ask_async(request, models=self.models)
        except RlmError as exc:
            result, error = getattr(exc, "result", None), str(exc)
            if result is None:
                return MethodResult(None, "error", time.monotonic() - started, error=error)
        usage = result.usage
        return MethodResult(
            answer=result.answer, status=result.status, seconds=result.duration_s,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost_usd=usage.cost_usd,
            calls=result.iterations + result.subcalls, error=error or result.error,
            extra={"iterations": result.iterations, "subcalls": result.subcalls,
                   "trace_file": str(result.trace_file) if result.trace_file else None},
        )
