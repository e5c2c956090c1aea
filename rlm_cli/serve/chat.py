"""One chat-completions request, answered: passed through to the root model when its messages
are small, answered by the RLM loop over those messages as `context` when they are large.

Nothing here knows HTTP; errors are `ChatError`s carrying the status and OpenAI error type the
HTTP layer sends.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.api import AskRequest, Inputs, Limits, ModelSession, Rlm
from rlm_cli.errors import InputError, LimitError, ModelError, RlmError, UsageError
from rlm_cli.events import Usage
from rlm_cli.model_client import Closable, ModelClient

QUESTION = (
    "Reply to the last user message of the conversation held in `context`, as the assistant would,"
    " following its instructions. Each message there starts with a line `[role]`."
)
QUOTED_LAST_MESSAGE_CHARS = 4_000  # a short last message is repeated in the question itself


class ChatError(Exception):
    """A request that gets an HTTP error: `status`, OpenAI's error `kind`, a one-line message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class Reply:
    """The assistant's reply, and how it was computed (`rlm` or `direct`)."""

    text: str
    strategy: str
    usage: Usage = Usage()
    finish_reason: str = "stop"
    trace_file: Path | None = None
    iterations: int = 0
    subcalls: int = 0


def messages_of(body: Any) -> list[dict[str, str]]:
    """The request's messages as role/text pairs (content parts joined); ChatError if malformed."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ChatError(400, "`messages` must be a non-empty list")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ChatError(400, f"messages[{i}] needs a `role`")
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if content is not None and not isinstance(content, str):
            raise ChatError(400, f"messages[{i}].content must be a string or a list of parts")
        out.append({"role": message["role"], "content": content or ""})
    return out


def transcript(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages) + "\n"


def question_for(messages: list[dict[str, str]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if last and len(last) <= QUOTED_LAST_MESSAGE_CHARS:
        return f"{QUESTION}\n\nThe last user message:\n{last}"
    return QUESTION


class ChatService:
    """Replies to chat requests with the models of one `ModelSession`, shared by all requests."""

    def __init__(self, rlm: Rlm, models: ModelSession, limits: Limits, threshold: int) -> None:
        self._rlm = rlm
        self._models = models
        self._limits = limits
        self.threshold = threshold  # characters of message text above which the RLM loop answers
        self._root: ModelClient | None = None

    @property
    def model(self) -> str:
        return self._models.choice.model

    async def reply(self, body: Any) -> Reply:
        messages = messages_of(body)
        if sum(len(m["content"]) for m in messages) <= self.threshold:
            return await self._direct(messages)
        return await self._loop(messages)

    async def _direct(self, messages: list[dict[str, str]]) -> Reply:
        if self._root is None:
            self._root = self._models.root_client()
        try:
            completion = await self._root.complete(messages)
        except ModelError as exc:
            raise ChatError(502, str(exc), "api_error") from None
        return Reply(completion.text, "direct", completion.usage, completion.finish_reason or "stop")

    async def aclose(self) -> None:
        """Close the direct path's client (its connections), when the server stops."""
        root, self._root = self._root, None
        if isinstance(root, Closable):
            await root.aclose()

    async def _loop(self, messages: list[dict[str, str]]) -> Reply:
        with tempfile.TemporaryDirectory(prefix="rlm-serve-") as scratch:
            path = Path(scratch) / "conversation.txt"
            path.write_text(transcript(messages), encoding="utf-8")
            request = AskRequest(Inputs((str(path),)), question_for(messages), limits=self._limits)
            try:
                result = await self._rlm.ask_async(request, models=self._models)
            except (UsageError, InputError) as exc:
                raise ChatError(400, str(exc)) from None
            except ModelError as exc:
                raise ChatError(502, str(exc), "api_error") from None
            except LimitError as exc:
                raise ChatError(504, f"stopped: {exc}", "timeout") from None
            except RlmError as exc:
                raise ChatError(500, str(exc), "server_error") from None
        if result.answer is None:
            raise ChatError(504, f"stopped: {result.error or 'the run ended without an answer'}", "timeout")
        return Reply(
            result.answer,
            "rlm",
            result.usage,
            "stop" if result.status == "ok" else "length",  # a limit ended it: the best partial answer
            result.trace_file,
            result.iterations,
            result.subcalls,
        )
