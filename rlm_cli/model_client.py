"""Talking to models: litellm behind one small interface, imported only when a model is called.

`import litellm` costs ~2.5 s, reads `.env` files and fetches a price map from the internet unless
told otherwise, so it happens here, lazily, with those switched off. litellm's own retries are off:
this module retries 429/5xx/timeouts itself so it can honour Retry-After and record every fault.
Foreign exceptions are translated into `ModelError`/`ContextWindowError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    request_timeout: float = 600.0  # seconds per request
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


class LiteLLMClient:
    """A `ModelClient` for any model litellm knows, or any OpenAI-compatible server."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings

    @property
    def model(self) -> str:
        return self.settings.model

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

    async def complete(self, messages: list[dict[str, str]]) -> Completion:
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

        faults: list[str] = []
        started = time.monotonic()
        for attempt in range(s.max_retries + 1):
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                retry_after = _classify(litellm, exc, s.model)  # raises when retrying cannot help
                faults.append(_describe(exc))
                if attempt == s.max_retries:
                    raise ModelError(
                        f"{s.model}: provider unreachable after {s.max_retries} retries ({faults[-1]})"
                    ) from exc
                await asyncio.sleep(retry_after if retry_after is not None else self._backoff(attempt))
                continue
            if not getattr(response, "choices", None):
                faults.append("a reply with no choices")
                if attempt == s.max_retries:
                    raise ModelError(f"{s.model}: the provider answered with no choices, {s.max_retries + 1} times")
                await asyncio.sleep(self._backoff(attempt))
                continue
            text = response.choices[0].message.content or ""
            if not text.strip() and attempt < s.max_retries:
                faults.append("empty reply")
                await asyncio.sleep(self._backoff(attempt))
                continue
            return self._completion(litellm, response, text, time.monotonic() - started, faults)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        base = self.settings.retry_base_delay * (2**attempt)
        return min(30.0, base) * (0.8 + 0.4 * random.random())

    @staticmethod
    def _completion(litellm: Any, response: Any, text: str, duration: float, faults: list[str]) -> Completion:
        usage = getattr(response, "usage", None)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unpriced model
            cost = None
        finish_reason = response.choices[0].finish_reason
        if finish_reason == "length":
            faults = [*faults, "truncated: the reply hit the output limit (finish_reason=length)"]
        return Completion(
            text=text,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=cost,
            duration_s=duration,
            finish_reason=finish_reason,
            faults=tuple(faults),
        )


_NOISE = re.compile(r"^(?:litellm\.)?(?:\w+(?:Error|Exception)(?: - |: ))+")


def _describe(exc: Exception) -> str:
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
    return _retry_after(exc)


def _missing_keys(litellm: Any, model: str) -> str:
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # unknown provider: litellm raises a bare Exception
        missing = []
    if missing:
        return f"set {' or '.join(missing)} in the environment"
    return "set the provider's API key variable in the environment"


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After (seconds or an HTTP date), capped at a minute; None when absent.

    litellm keeps the provider's headers in `litellm_response_headers`; its `response` is often
    a stand-in with no headers.
    """
    response = getattr(exc, "response", None)
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None), getattr(response, "headers", None)):
        if not headers:
            continue
        try:
            if headers.get("retry-after-ms") is not None:
                return min(60.0, max(0.0, float(headers["retry-after-ms"]) / 1000))
            value = headers.get("retry-after")
        except (AttributeError, TypeError, ValueError):
            continue
        if value is None:
            continue
        try:
            return min(60.0, max(0.0, float(value)))
        except (TypeError, ValueError):
            pass
        try:
            when = email.utils.parsedate_to_datetime(str(value))
            return min(60.0, max(0.0, when.timestamp() - time.time()))
        except (TypeError, ValueError, IndexError):
            continue
    return None
