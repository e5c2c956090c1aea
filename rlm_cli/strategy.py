"""How to answer: straight from the whole input in one prompt (`direct`) or with the RLM loop.

`auto` answers directly when the input and the question fit comfortably in the root model's
window, and runs the RLM loop otherwise (or when the model refuses the prompt as too long): a
small root model answers a short input better by reading it than by writing code to look at it,
and a window it does not know is never assumed to be big enough. `direct` on an input past the
window keeps its head and tail.

The bench's `direct` baseline calls `answer_directly` too, so `--strategy direct` and the
baseline are one prompt, and `auto` below the window is the baseline exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rlm_cli.errors import ContextWindowError, ModelError, RlmError, UsageError
from rlm_cli.model_client import Completion, ModelClient

STRATEGIES = ("auto", "rlm", "direct")
CHARS_PER_TOKEN = 3.0  # below the usual 4: logs, ids and code cut into short tokens
OUTPUT_TOKENS = 1_024  # kept free for the reply
PROMPT_TOKENS = 300  # the instructions and the question, roughly
# auto's estimate: prose runs ~4 characters a token, logs and code ~3. An input that turns out
# longer than the estimate is refused by the model and auto falls back to the loop, so the
# estimate may be hopeful; COMFORT keeps a margin below the window all the same.
AUTO_CHARS_PER_TOKEN = 3.5
COMFORT = 0.9
SHRINK = 0.7  # a prompt the server refused as too long is cut to this share and sent again


def check(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return strategy


def window_chars(window: int | None) -> int | None:
    """How many characters of input one prompt to a model with this window (tokens) can carry."""
    if not window:
        return None
    return max(1_000, int((window - OUTPUT_TOKENS - PROMPT_TOKENS) * CHARS_PER_TOKEN))


def fits(input_chars: int, question: str, window: int | None) -> bool:
    """Whether the input and the question fit comfortably in one prompt to a window of `window` tokens."""
    if not window:
        return False
    tokens = (input_chars + len(question)) / AUTO_CHARS_PER_TOKEN + PROMPT_TOKENS + OUTPUT_TOKENS
    return tokens <= window * COMFORT


def choose(strategy: str, input_chars: int, question: str, window: int | None) -> str:
    """`rlm` or `direct` for an input of `input_chars` characters and a root window in tokens."""
    if check(strategy) != "auto":
        return strategy
    return "direct" if fits(input_chars, question, window) else "rlm"


def head_and_tail(text: str, limit: int) -> str:
    """`text` if it fits `limit`, else its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit:,} characters omitted ...]\n"
    keep = max(0, limit - len(note))
    return text[: keep // 2] + note + text[len(text) - (keep - keep // 2) :]


def answer_prompt(question: str, material: str, what: str = "text") -> str:
    return (
        f"Answer the question using the {what} below. Reply with the answer only, no explanation.\n\n"
        f"Question: {question}\n\n<{what}>\n{material}\n</{what}>\n\nQuestion: {question}\nAnswer:"
    )


def too_long(exc: RlmError) -> bool:
    """The server refused the prompt as larger than its window (some say so only in words)."""
    return isinstance(exc, ContextWindowError) or (isinstance(exc, ModelError) and "context" in str(exc).lower())


@dataclass
class Asked:
    """What one answer cost: every completion, refused attempts not included."""

    completions: list[Completion] = field(default_factory=list)


async def ask_fitted(
    client: ModelClient, build: Callable[[int], str], limit: int, asked: Asked, *, shrink: bool = True
) -> str:
    """The reply to `build(limit)`, cut down and sent again while the model says it is too long
    (with `shrink`; else the refusal is raised as a ContextWindowError)."""
    while True:
        try:
            completion = await client.complete([{"role": "user", "content": build(limit)}])
        except RlmError as exc:
            if not too_long(exc):
                raise
            if not shrink or limit < 2_000:
                raise ContextWindowError(f"{client.model}: the prompt is larger than the model's context window") from exc
            limit = int(limit * SHRINK)
            continue
        asked.completions.append(completion)
        return completion.text.strip()


DEFAULT_WINDOW = 128_000  # tokens, for `direct` with a model whose window nobody knows


async def answer_directly(client: ModelClient, text: str, question: str, asked: Asked, *, whole: bool = False) -> str:
    """The root model's answer from the whole input: past the window, its head and tail, or
    (`whole`) a ContextWindowError, so a caller can turn to the loop instead."""
    limit = len(text) if whole else window_chars(client.context_window()) or window_chars(DEFAULT_WINDOW) or 0
    build = lambda n: answer_prompt(question, head_and_tail(text, n))  # noqa: E731
    return await ask_fitted(client, build, limit, asked, shrink=not whole)
