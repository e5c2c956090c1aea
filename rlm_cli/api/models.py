"""The models of a run, resolved and running: settings for root and sub-model, local servers.

A `ModelSession` turns the resolved `Settings` into `ModelSettings` and `ModelClient`s, starting
a local llama-server (once per model string) when `local` is asked for, and stopping it on
`close()`. Many asks can share one session, so a benchmark or a batch starts the server once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rlm_cli.local.serve import ModelServers
from rlm_cli.model_client import LiteLLMClient, ModelClient, ModelSettings
from rlm_cli.settings import ModelChoice, Settings

ClientFactory = Callable[[ModelSettings], ModelClient]


class ModelSession:
    def __init__(
        self, settings: Settings, notify: Callable[[str], None], make_client: ClientFactory = LiteLLMClient
    ) -> None:
        self.settings = settings
        self.make_client = make_client
        self._servers = ModelServers(notify, settings.request)

    @property
    def choice(self) -> ModelChoice:
        return self.settings.models

    def root_settings(self, time_left: float | None = None) -> ModelSettings:
        choice = self.choice
        return self._servers.settings(choice.model, choice.api_base, root=True, time_left=time_left)

    def sub_settings(self, time_left: float | None = None) -> ModelSettings:
        choice = self.choice
        return self._servers.settings(choice.sub_model, choice.sub_api_base, root=False, time_left=time_left)

    def root_client(self) -> ModelClient:
        return self.make_client(self.root_settings())

    def sub_client(self) -> ModelClient:
        return self.make_client(self.sub_settings())

    def close(self) -> None:
        self._servers.close()

    def __enter__(self) -> ModelSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
