"""Which transport calls a model, chosen where clients are made.

An OpenAI-compatible endpoint (any `--api-base` with a bare or `openai/` model, an `openai/*`
model, the local server) gets `OpenAIHTTPClient`: no litellm import, the first request leaves at
once. Every other provider (`anthropic/...`, `gemini/...`, a bare `claude-...`) gets
`LiteLLMClient`, whose import is started early by `warm_up_for`. Every client of one provider
shares one `AdaptiveLimiter` from the `Limiters` it is given.
"""

from __future__ import annotations

import threading

from rlm_cli.budget import Limits
from rlm_cli.concurrency import Limiters
from rlm_cli.local.model_spec import is_local_model
from rlm_cli.model_client import LiteLLMClient, ModelClient, ModelSettings, RetryingClient, warm_up


def speaks_openai(model: str, api_base: str | None) -> bool:
    """Whether the endpoint is OpenAI's chat API as is, needing no translation."""
    provider = model.split("/", 1)[0] if "/" in model else None
    return provider == "openai" or (provider is None and api_base is not None)


def provider_key(settings: ModelSettings) -> str:
    """What one limiter covers: the server, or the provider behind a bare model name."""
    if settings.api_base:
        return settings.api_base.rstrip("/")
    return settings.model.split("/", 1)[0] if "/" in settings.model else settings.model


def warm_up_for(*models: tuple[str, str | None]) -> None:
    """Start loading what the models of a run need, in the background, while sources load:
    litellm only if one of (model, api_base) needs it, else httpx, the parts of httpcore and
    anyio its first request loads, and the price table (~0.3 s together)."""
    if any(not speaks_openai(model, base) and not is_local_model(model) for model, base in models):
        warm_up()
    else:
        threading.Thread(target=_load_openai_client, name="openai-client-import", daemon=True).start()


def _load_openai_client() -> None:
    from rlm_cli import openai_client, prices  # noqa: F401  (the imports are the work)

    prices.context_window("gpt-4o-mini")  # parses the table once
    # httpx loads httpcore only when a client is made, httpcore its anyio backend and anyio
    # its asyncio backend only at the first connection.
    import anyio._backends._asyncio  # noqa: F401
    import httpcore._backends.anyio  # noqa: F401


class ClientMaker:
    """The default `make_client`: a transport for the settings, with its provider's limiter."""

    def __init__(self, limiters: Limiters, limits: Limits = Limits()) -> None:
        self.limiters = limiters
        self.limits = limits

    def __call__(self, settings: ModelSettings) -> ModelClient:
        limiter = self.limiters.get(provider_key(settings), self.limits.concurrency, self.limits.max_concurrency)
        kind: type[RetryingClient] = LiteLLMClient
        if speaks_openai(settings.model, settings.api_base):
            from rlm_cli.openai_client import OpenAIHTTPClient  # httpx: only when a model is called

            kind = OpenAIHTTPClient
        return kind(settings, limiter)
