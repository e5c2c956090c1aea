"""Talking to models: one small interface, one retry loop, two transports behind it.

`RetryingClient.complete` owns what every provider call shares: the retries with backoff and
Retry-After, the per-request deadline (`request_timeout` bounds a whole attempt, so a reply
trickled a byte a second cannot hold a request forever), the fault record, and the per-provider
concurrency limiter each attempt goes through. A transport only sends one attempt (`_send`) and
turns its foreign errors into `Transient` (retry it) or `ModelError`/`ContextWindowError` (stop).

Transports: `rlm_cli.openai_client.OpenAIHTTPClient` speaks the OpenAI chat API over httpx
(OpenAI-compatible servers, `openai/*`, the local model); `LiteLLMClient` here reaches every
other provider through litellm, which costs ~3 s to import, reads `.env` files and fetches a
price map unless told otherwise, so it is imported lazily, with those switched off.
`rlm_cli.clients` picks one. litellm's own retries are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlm_cli.errors import ContextWindowError, ModelError
from rlm_cli.events import Usage

_import_lock = threading.Lock()


def import_litellm() -> Any:
    """Import litellm once, offline and quiet; safe to call from a warm-up thread."""
    with _import_lock:
        os.environ.setdefault("LITELLM_MODE", "PRODUCTION")  # do not read ./.env
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download
        import litellm

        litellm.suppress_debug_info = True  # its "Give Feedback" banner would land on stdout
        litellm.drop_params = True  # e.g. temperature on models that refuse it
        litellm.telemetry = False
        return litellm


def warm_up() -> None:
    """Start importing litellm in the background while sources load and the worker starts."""
    threading.Thread(target=import_litellm, name="litellm-import", daemon=True).start()


@dataclass(frozen=True)
class ModelSettings:
    """Where and how to call one model; built at the edge (`rlm_cli.api`), which applies the
    environment's RLM_REQUEST_TIMEOUT, RLM_MAX_RETRIES and RLM_RETRY_BASE_DELAY over these defaults."""

    model: str
    api_base: str | None = None
    api_key: str | None = None
    request_timeout: float = 600.0  # seconds for one whole attempt, first byte to last
    max_retries: int = 4
    retry_base_delay: float = 0.5  # seconds; doubled per attempt, with jitter
    max_tokens: int | None = None
    temperature: float | None = None
    context_window: int | None = None  # tokens, where we know better than litellm (local models)

    def litellm_model(self) -> str:
        """A bare name with an --api-base means an OpenAI-compatible server."""
        if self.api_base and "/" not in self.model:
            return f"openai/{self.model}"
        return self.model


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None where the model has no known price
    duration_s: float
    finish_reason: str | None = None
    faults: tuple[str, ...] = field(default_factory=tuple)  # what went wrong before it went right

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, self.cost_usd)


class ModelClient(Protocol):
    """What the loop and the sub-call runner need from a model; tests may hand in their own."""

    @property
    def model(self) -> str: ...

    def context_window(self) -> int | None: ...

    async def complete(self, messages: list[dict[str, str]]) -> Completion: ...


@runtime_checkable
class Closable(Protocol):
    """A client holding connections, which the run that made it closes at its end."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Reply:
    """One attempt's answer, as a transport parsed it; `choices=False`: it held none."""

    text: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    choices: bool = True


class Transient(Exception):
    """A fault a retry may fix; `overloaded` (a 429) tells the limiter to send less."""

    def __init__(self, label: str, retry_after: float | None = None, overloaded: bool = False) -> None:
        super().__init__(label)
        self.label = label
        self.retry_after = retry_after
        self.overloaded = overloaded


class Gate(Protocol):
    """Admission for one attempt (`rlm_cli.concurrency.AdaptiveLimiter`); told how it went."""

    async def acquire(self) -> None: ...

    def release(self, latency: float, overloaded: bool = False) -> None: ...


MAX_REFUSALS = 32  # 429s one call may meet while a limiter adapts, on top of max_retries


class RetryingClient:
    """The retry loop every transport shares; subclasses implement `_send` (and may override
    `context_window`)."""

    def __init__(self, settings: ModelSettings, limiter: Gate | None = None) -> None:
        self.settings = settings
        self._limiter = limiter

    @property
    def model(self) -> str:
        return self.settings.model

    def context_window(self) -> int | None:
        return self.settings.context_window

    async def _send(self, messages: list[dict[str, str]]) -> Reply:
        raise NotImplementedError

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
        s = self.settings
        faults: list[str] = []
        started = time.monotonic()
        attempt = refusals = 0
        while True:
            last = attempt >= s.max_retries
            try:
                async with self._admitted():
                    async with asyncio.timeout(s.request_timeout or None):
                        reply = await self._send(messages)
            except TimeoutError as exc:
                fault = Transient(f"Timeout: no complete reply within {s.request_timeout:g} s")
                fault.__cause__ = exc
            except Transient as exc:
                fault = exc
            else:
                if not reply.choices:
                    faults.append("a reply with no choices")
                    if last:
                        raise ModelError(f"{s.model}: the provider answered with no choices, {s.max_retries + 1} times")
                elif not reply.text.strip() and not last:
                    faults.append("empty reply")
                else:
                    return self._completion(reply, time.monotonic() - started, faults)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            faults.append(fault.label)
            if fault.overloaded and self._limiter is not None and refusals < MAX_REFUSALS:
                # A 429 while the limiter finds the provider's level: the limiter, now lower,
                # decides when it goes again; it costs no retry, and no backoff but Retry-After.
                refusals += 1
                await asyncio.sleep(fault.retry_after or 0.0)
                continue
            if last:
                raise ModelError(f"{s.model}: provider unreachable after {s.max_retries} retries ({fault.label})") from fault
            await asyncio.sleep(fault.retry_after if fault.retry_after is not None else self._backoff(attempt))
            attempt += 1

    @contextlib.asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        """One attempt through the limiter, which hears its latency and whether it was a 429."""
        if self._limiter is None:
            yield
            return
        await self._limiter.acquire()
        began = time.monotonic()
        overloaded = False
        try:
            yield
        except Transient as exc:
            overloaded = exc.overloaded
            raise
        finally:
            self._limiter.release(time.monotonic() - began, overloaded)

    def _backoff(self, attempt: int) -> float:
        base = self.settings.retry_base_delay * (2**attempt)
        return min(30.0, base) * (0.8 + 0.4 * random.random())

    @staticmethod
    def _completion(reply: Reply, duration: float, faults: list[str]) -> Completion:
        if reply.finish_reason == "length":
            faults = [*faults, "truncated: the reply hit the output limit (finish_reason=length)"]
        return Completion(
            text=reply.text,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            duration_s=duration,
            finish_reason=reply.finish_reason,
            faults=tuple(faults),
        )


class LiteLLMClient(RetryingClient):
    """A `ModelClient` for any provider litellm knows (Anthropic, Gemini, Bedrock, ...)."""

    def context_window(self) -> int | None:
        """The model's input window in tokens, where known."""
        if self.settings.context_window:
            return self.settings.context_window
        litellm = import_litellm()
        try:
            info = litellm.get_model_info(self.settings.litellm_model())
        except Exception:  # unknown model: litellm raises a bare Exception
            return None
        window = info.get("max_input_tokens") or info.get("max_tokens")
        return int(window) if window else None

    async def _send(self, messages: list[dict[str, str]]) -> Reply:
        litellm = import_litellm()
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": s.litellm_model(),
            "messages": messages,
            "timeout": s.request_timeout,
            "num_retries": 0,
        }
        if s.api_base:
            kwargs["api_base"] = s.api_base
            # OpenAI-compatible local servers need no key, but the client insists on one.
            kwargs["api_key"] = s.api_key or os.environ.get("OPENAI_API_KEY") or "no-key"
        elif s.api_key:
            kwargs["api_key"] = s.api_key
        if s.max_tokens:
            kwargs["max_tokens"] = s.max_tokens
        if s.temperature is not None:
            kwargs["temperature"] = s.temperature
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            retry_after = _classify(litellm, exc, s.model)  # raises when retrying cannot help
            raise Transient(_describe(exc), retry_after, overloaded=isinstance(exc, litellm.RateLimitError)) from exc
        if not getattr(response, "choices", None):
            return Reply("", None, 0, 0, None, choices=False)
        usage = getattr(response, "usage", None)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unpriced model
            cost = None
        return Reply(
            text=response.choices[0].message.content or "",
            finish_reason=response.choices[0].finish_reason,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=cost,
        )


_NOISE = re.compile(r"^(?:litellm\.)?(?:\w+(?:Error|Exception)(?: - |: ))+")


def transport_label(exc: BaseException) -> str | None:
    """What went wrong on the wire, in words, found anywhere in the cause chain; None if not a
    transport fault. httpx, openai and json errors are recognised by name, so no import is needed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name == "ConnectError" or isinstance(current, ConnectionRefusedError):
            return "connection refused: nothing answered at the server's address"
        if name in ("RemoteProtocolError", "ReadError", "WriteError") or isinstance(current, ConnectionResetError):
            return "connection cut: the server closed the connection before a whole reply"
        if name in ("ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout"):
            return f"Timeout: {name}"
        if isinstance(current, json.JSONDecodeError):
            return "invalid JSON: the server's reply could not be parsed"
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: Exception) -> str:
    wire = transport_label(exc)
    if wire is not None:
        return wire
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(exc).splitlines()[0] if str(exc) else ""
    message = _NOISE.sub("", message).strip()  # litellm repeats the class name a few times
    return f"{name} {status}: {message[:200]}" if status else f"{name}: {message[:200]}"


def _classify(litellm: Any, exc: Exception, model: str) -> float | None:
    """Raise for faults no retry can fix; for the others return the server's Retry-After, if any."""
    if isinstance(exc, litellm.ContextWindowExceededError):
        raise ContextWindowError(f"{model}: the prompt is larger than the model's context window") from exc
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        raise ModelError(f"{model}: authentication failed ({_describe(exc)}); check the provider's API key") from exc
    if "missing credentials" in str(exc).lower():  # the client refused before any request was sent
        raise ModelError(f"{model}: no API key: {_missing_keys(litellm, model)}") from exc
    if isinstance(exc, litellm.NotFoundError):
        raise ModelError(f"{model}: model not found ({_describe(exc)})") from exc
    if isinstance(exc, litellm.BadRequestError):
        raise ModelError(f"{model}: request rejected ({_describe(exc)})") from exc
    status = getattr(exc, "status_code", None)
    transient = isinstance(
        exc,
        (
            litellm.RateLimitError,
            litellm.APIConnectionError,
            litellm.Timeout,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
        ),
    ) or (isinstance(status, int) and status >= 500)
    if not transient:
        raise ModelError(f"{model}: {_describe(exc)}") from exc
    response = getattr(exc, "response", None)
    # litellm keeps the provider's headers in `litellm_response_headers`; its `response` is
    # often a stand-in with no headers.
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None), getattr(response, "headers", None)):
        found = retry_after(headers)
        if found is not None:
            return found
    return None


def _missing_keys(litellm: Any, model: str) -> str:
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # unknown provider: litellm raises a bare Exception
        missing = []
    if missing:
        return f"set {' or '.join(missing)} in the environment"
    return "set the provider's API key variable in the environment"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The server's Retry-After (`retry-after-ms`, seconds or an HTTP date), capped at a minute;
    None when absent or unreadable."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return min(60.0, max(0.0, float(headers["retry-after-ms"]) / 1000))
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return min(60.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
        return min(60.0, max(0.0, when.timestamp() - time.time()))
    except (TypeError, ValueError, IndexError):
        return None
