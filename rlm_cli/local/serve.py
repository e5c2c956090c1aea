"""Local models for one run: start llama-server once per model string, stop them all at the end.

`ModelServers.settings()` turns a model string into `ModelSettings`: a provider model passes
through; `local` / `local:PATH` starts (once) a server on 127.0.0.1 and points the settings at
it with its private key, its window and deterministic sampling. Progress goes to `notify` so the
trace can show the first-run join and the model loading.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rlm_cli.local.model_spec import is_local_model, parse_local_model
from rlm_cli.local.server import LocalServer, ServerProgress
from rlm_cli.model_client import ModelSettings

LOCAL_MODEL_NAME = "local"  # the server's --alias; with an api_base litellm calls openai/local
ROOT_MAX_TOKENS = 1024  # a small model that rambles costs ~1 s per 12 tokens on a CPU


class ModelServers:
    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify
        self._servers: dict[str, LocalServer] = {}

    def settings(self, model: str, api_base: str | None, *, root: bool) -> ModelSettings:
        if not is_local_model(model):
            return ModelSettings(model, api_base=api_base)
        server = self._servers.get(model) or self._start(model)
        return ModelSettings(
            LOCAL_MODEL_NAME,
            api_base=server.url,
            api_key=server.api_key,
            max_tokens=ROOT_MAX_TOKENS if root else None,
            temperature=0.0,
            context_window=server.ctx_size,
        )

    def _start(self, model: str) -> LocalServer:
        spec = parse_local_model(model)
        path = spec.resolve_path(self._join_progress())
        started = time.monotonic()
        self._notify(f"local model: starting llama-server with {path.name}")
        server = LocalServer(path, progress=self._server_progress)
        self._servers[model] = server
        server.start()
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
