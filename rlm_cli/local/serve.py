"""Local models for one run: start llama-server once per model string, stop them all at the end.

`ModelServers.settings()` turns a model string into `ModelSettings`: a provider model passes
through; `local` / `local:PATH` starts (once) a server on 127.0.0.1 and points the settings at
it with its private key, its window and deterministic sampling. Progress goes to `notify` so the
trace can show the first-run join and the model loading.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rlm_cli.errors import LimitError, ModelError
from rlm_cli.local.model_spec import LOCAL_MODEL, is_local_model, parse_local_model
from rlm_cli.local.server import LocalServer, ServerProgress
from rlm_cli.model_client import ModelSettings

# A small model that rambles costs ~1 s per 12 tokens on a CPU. Of 118 root replies of the 1.5B
# model in bench and quick-start runs, the longest useful one had 75 tokens; the five at the
# cap were loops repeating invented values, which 384 tokens cut off 53 s sooner each.
ROOT_MAX_TOKENS = 384
STARTUP_TIMEOUT_S = 120.0


class ModelServers:
    """`overrides` are the environment's ModelSettings fields (`settings.request_overrides`)."""

    def __init__(self, notify: Callable[[str], None], overrides: Mapping[str, Any] | None = None) -> None:
        self._notify = notify
        self._overrides = dict(overrides or {})
        self._servers: dict[str, LocalServer] = {}

    def settings(self, model: str, api_base: str | None, *, root: bool, time_left: float | None = None) -> ModelSettings:
        """How to call `model`; a local one is started first, within `time_left` seconds."""
        if not is_local_model(model):
            return ModelSettings(model, api_base=api_base, **self._overrides)
        server = self._servers.get(model) or self._start(model, time_left)
        return ModelSettings(
            LOCAL_MODEL,
            api_base=server.url,
            api_key=server.api_key,
            max_tokens=ROOT_MAX_TOKENS if root else None,
            temperature=0.0,
            context_window=server.window,
            **self._overrides,
        )

    def _start(self, model: str, time_left: float | None) -> LocalServer:
        spec = parse_local_model(model)
        path = spec.resolve_path(self._join_progress())
        started = time.monotonic()
        self._notify(f"local model: starting llama-server with {path.name}")
        timeout = STARTUP_TIMEOUT_S if time_left is None else min(STARTUP_TIMEOUT_S, time_left)
        if timeout <= 0:
            raise LimitError("time limit reached before the local model could start")
        server = LocalServer(path, progress=self._server_progress, startup_timeout=timeout)
        self._servers[model] = server
        try:
            server.start()
        except ModelError as exc:
            if timeout < STARTUP_TIMEOUT_S and time.monotonic() - started >= timeout:
                raise LimitError(f"time limit reached while the local model was starting ({exc})") from exc
            raise
        self._notify(f"local model ready on {server.url} in {time.monotonic() - started:.1f} s")
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def _join_progress(self) -> Callable[[int, int], None]:
        """Report the first-run join of the weight parts in quarters, not per chunk."""
        shown = -1

        def progress(done: int, total: int) -> None:
            nonlocal shown
            quarter = 4 * done // max(total, 1)
            if quarter != shown:
                shown = quarter
                self._notify(f"local model: joining weight parts ({done / 2**20:,.0f} of {total / 2**20:,.0f} MiB, first run only)")

        return progress

    def _server_progress(self, progress: ServerProgress) -> None:
        if progress.phase == "loading model" and progress.elapsed_s < 0.6:
            self._notify("local model: loading")
