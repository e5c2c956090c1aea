"""The OpenAI chat-completions API spoken directly, for OpenAI-compatible endpoints.

An `--api-base` server, an `openai/*` model and the bundled local llama-server all speak this
API, so they need none of litellm's translation and none of its ~3 s import. A plain-http server
with no proxy configured (the local model, a server on the network) is spoken to with
`rlm_cli.http11` (asyncio and h11: a few milliseconds to import, a fraction of a millisecond per
request); TLS and proxies go through httpx, imported on the first such request (or by the
warm-up, `load_httpx`). Retries, the per-request deadline and the limiter are `RetryingClient`'s;
this module sends one attempt and names what went wrong (connection refused, a cut connection,
invalid JSON, an HTTP status) in words. Prices and windows come from litellm's bundled table
(`rlm_cli.prices`) without importing it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import urlsplit

import h11

from rlm_cli import __version__, prices
from rlm_cli.errors import ContextWindowError, ModelError
from rlm_cli.http11 import Http11Client
from rlm_cli.model_client import Gate, ModelSettings, Reply, RetryingClient, Transient, retry_after, transport_label

OPENAI_API_BASE = "https://api.openai.com/v1"
POOL_SIZE = 16  # requests in flight per httpx connection pool
_CONTEXT_WORDS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens")
# Where one of these is set, plain http goes through httpx too, which honours them (and NO_PROXY).
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


class HTTPReply(Protocol):
    """What is read of a reply: an `httpx.Response` or an `rlm_cli.http11.Response`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class OpenAIHTTPClient(RetryingClient):
    """A `ModelClient` for any OpenAI-compatible chat-completions endpoint."""

    def __init__(self, settings: ModelSettings, limiter: Gate | None = None) -> None:
        super().__init__(settings, limiter)
        model = settings.model
        self._wire_model = model.split("/", 1)[1] if model.startswith("openai/") else model
        self._url = (settings.api_base or OPENAI_API_BASE).rstrip("/") + "/chat/completions"
        # Keys come from the provider's usual variable; a local server needs none but may check one.
        self._key = settings.api_key or os.environ.get("OPENAI_API_KEY") or (None if settings.api_base is None else "no-key")
        url = urlsplit(self._url)
        plain = url.scheme == "http" and url.hostname is not None and not any(os.environ.get(v) for v in _PROXY_VARIABLES)
        self._plain = Http11Client(url.hostname or "", url.port or 80) if plain else None
        self._target = url.path + (f"?{url.query}" if url.query else "")
        self._pools: list[_Pool] = []  # httpx's, for TLS and proxies

    def context_window(self) -> int | None:
        return self.settings.context_window or prices.context_window(self.settings.litellm_model())

    async def aclose(self) -> None:
        """Close every pool's connections (a run's end): no socket is left to the garbage collector."""
        pools, self._pools = self._pools, []
        await asyncio.gather(*(pool.client.aclose() for pool in pools))
        if self._plain is not None:
            await self._plain.aclose()

    async def _send(self, messages: list[dict[str, str]]) -> Reply:
        s = self.settings
        if self._key is None:
            raise ModelError(f"{s.model}: no API key: set OPENAI_API_KEY in the environment")
        body: dict[str, Any] = {"model": self._wire_model, "messages": messages}
        if s.max_tokens:
            body["max_tokens"] = s.max_tokens
        if s.temperature is not None:
            body["temperature"] = s.temperature
        headers = {
            "Authorization": f"Bearer {self._key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"rlm/{__version__}",
        }
        response = await self._post(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), headers)
        if response.status_code >= 400:
            raise self._http_fault(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise Transient(f"invalid JSON: the server's reply could not be parsed ({response.text[:80]!r})") from exc
        return self._reply(data)

    async def _post(self, body: bytes, headers: dict[str, str]) -> HTTPReply:
        """One attempt on the wire; a transport fault becomes a `Transient` saying what it was."""
        if self._plain is not None:
            try:
                return await self._plain.post(self._target, headers, body)
            except (OSError, h11.RemoteProtocolError) as exc:
                raise Transient(transport_label(exc) or f"{type(exc).__name__}: {exc}") from exc
        httpx = load_httpx()
        pool = self._pool(httpx)
        pool.in_flight += 1
        try:
            return await pool.client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Transient(transport_label(exc) or f"{type(exc).__name__}: {exc}") from exc
        finally:
            pool.in_flight -= 1

    def _pool(self, httpx: ModuleType) -> _Pool:
        """The least busy connection pool, a new one when all have POOL_SIZE requests in flight.

        httpcore's pool does work quadratic in its connections on every request (0.6 s of a
        64-call batch on this machine), so the connections are spread over small pools. The
        limiter, not the pools, bounds how many requests are in flight.
        """
        pool = min(self._pools, key=lambda p: p.in_flight, default=None)
        if pool is None or pool.in_flight >= POOL_SIZE:
            pool = _Pool(httpx, self._url.startswith("https:"), self.settings.request_timeout or None)
            self._pools.append(pool)
        return pool

    def _reply(self, data: Any) -> Reply:
        if not isinstance(data, dict):
            raise Transient("invalid JSON: the reply is not a chat completion object")
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return Reply("", None, 0, 0, None, choices=False)
        message = choices[0].get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        usage = data.get("usage") or {}
        tokens_in = _int(usage.get("prompt_tokens")) if isinstance(usage, dict) else 0
        tokens_out = _int(usage.get("completion_tokens")) if isinstance(usage, dict) else 0
        return Reply(
            text=text if isinstance(text, str) else "",
            finish_reason=choices[0].get("finish_reason"),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=prices.cost(self.settings.litellm_model(), tokens_in, tokens_out),
        )

    def _http_fault(self, response: HTTPReply) -> Exception:
        """An HTTP error as a retryable `Transient` or a final `ModelError`."""
        model, status = self.settings.model, response.status_code
        message = _error_message(response)
        what = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        if status == 429:
            return Transient(f"rate limited ({what})", retry_after(response.headers), overloaded=True)
        if status in (408, 409) or status >= 500:
            return Transient(f"server error ({what})", retry_after(response.headers))
        if status in (400, 413, 422) and any(word in response.text.lower() for word in _CONTEXT_WORDS):
            return ContextWindowError(f"{model}: the prompt is larger than the model's context window")
        if status in (401, 403):
            return ModelError(f"{model}: authentication failed ({what}); check the provider's API key")
        if status == 404:
            return ModelError(f"{model}: model not found ({what})")
        return ModelError(f"{model}: request rejected ({what})")


_httpx_import = threading.Lock()


def load_httpx() -> ModuleType:
    """httpx, with what its first request loads: httpcore (httpx imports it only when a client is
    made), its anyio backend and anyio's asyncio backend (only at the first connection).

    Safe from the warm-up thread (`rlm_cli.clients`): a request waits here for it, instead of
    importing the same modules at the same time (two threads importing httpcore's parts in
    different orders is an import deadlock)."""
    with _httpx_import:
        import anyio._backends._asyncio  # noqa: F401  (the import is the work)
        import httpcore._backends.anyio  # noqa: F401
        import httpx

        return httpx


class _Pool:
    """One httpx client and the requests it is serving; made inside the running loop."""

    def __init__(self, httpx: ModuleType, tls: bool, timeout: float | None) -> None:
        # Plain http (through a proxy) never does TLS: no CA bundle to load (0.2 s per client here).
        verify: ssl.SSLContext | bool = _tls_context() if tls else False
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), limits=httpx.Limits(max_connections=None, max_keepalive_connections=POOL_SIZE), verify=verify
        )
        self.in_flight = 0


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every pool (httpx would load the CA bundle for each)."""
    context: ssl.SSLContext = load_httpx().create_ssl_context()
    return context


def _error_message(response: HTTPReply) -> str:
    """The provider's own words: OpenAI's `{"error": {"message": ...}}`, else the body's start."""
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    if isinstance(error, str):
        return error[:200]
    return ""


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0
