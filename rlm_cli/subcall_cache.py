"""Sub-call answers kept across runs, on disk, so asking the same question again costs nothing.

Keyed by the model, the parameters that change its answer (API base, max tokens, temperature)
and the full prompt, hashed; the value is the answer's text. Only whole answers are kept (not
errors, not replies cut off at the output limit). The store is `diskcache` (SQLite underneath)
in `<cache>/subcalls`, bounded in size (least recently used entries go first) and safe for
several rlm processes at once. `--no-cache` (`AskRequest.no_cache`) runs without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

DEFAULT_SIZE_LIMIT = 256 * 2**20  # bytes


class SubcallCache:
    def __init__(self, directory: Path, size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        self.directory = directory
        self._size_limit = size_limit
        self._store: Any = None  # diskcache.Cache, opened on first use or by open_soon()
        self._opening = threading.Lock()

    @staticmethod
    def key(model: str, params: dict[str, Any], prompt: str) -> str:
        blob = json.dumps([model, params, prompt], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str) -> str | None:
        """The kept answer, or None; a cache that cannot be read is a miss, not a failed run."""
        try:
            value = self._open().get(key)
        except (OSError, sqlite3.Error):
            return None
        return value if isinstance(value, str) else None

    def put(self, key: str, text: str) -> None:
        with contextlib.suppress(OSError, sqlite3.Error):  # a full or read-only disk: not kept
            self._open().set(key, text)

    def open_soon(self) -> None:
        """Open the store in a background thread: importing diskcache and making a new store's
        tables take ~0.1 s, which the first batch of sub-calls would otherwise wait for."""
        threading.Thread(target=self._open_quietly, name="subcall-cache-open", daemon=True).start()

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _open_quietly(self) -> None:
        with contextlib.suppress(OSError, sqlite3.Error):  # the first get or put says it again
            self._open().close()  # this thread's connection only: the store stays open for others

    def _open(self) -> Any:
        with self._opening:  # diskcache keeps a connection per thread: one store serves them all
            if self._store is None:
                import diskcache

                self.directory.mkdir(parents=True, exist_ok=True)
                self._store = diskcache.Cache(str(self.directory), size_limit=self._size_limit, eviction_policy="least-recently-used")
            return self._store
