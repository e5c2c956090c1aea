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
    litellm only if one of (model, api_base) needs it, else `load_openai_client`."""
    if any(not speaks_openai(model, base) and not is_local_model(model) for model, base in models):
        warm_up()
        return
    tls = any(not is_local_model(model) and not (base or "").startswith("http:") for model, base in models)
    threading.Thread(target=load_openai_client, args=(tls,), name="openai-client-import", daemon=True).start()


_openai_import = threading.Lock()


def load_openai_client(tls: bool = False) -> type[RetryingClient]:
    """The OpenAI-compatible transport and the price table (~50 ms), and with `tls` httpx's
    stack too (~0.3 s, `openai_client.load_httpx`). Safe from the warm-up thread: the run's own
    call waits here for it rather than importing the same modules at the same time."""
    with _openai_import:
        from rlm_cli import openai_client, prices

        prices.context_window("gpt-4o-mini")  # parses the table once
        if tls:
            openai_client.load_httpx()
        return openai_client.OpenAIHTTPClient


class ClientMaker:
    """The default `make_client`: a transport for the settings, with its provider's limiter."""

    def __init__(self, limiters: Limiters, limits: Limits = Limits()) -> None:
        self.limiters = limiters
        self.limits = limits

    def __call__(self, settings: ModelSettings) -> ModelClient:
        limiter = self.limiters.get(provider_key(settings), self.limits.concurrency, self.limits.max_concurrency)
        kind = load_openai_client() if speaks_openai(settings.model, settings.api_base) else LiteLLMClient
        return kind(settings, limiter)
