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
from pathlib import Path
from typing import Any

DEFAULT_SIZE_LIMIT = 256 * 2**20  # bytes


class SubcallCache:
    def __init__(self, directory: Path, size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        self.directory = directory
        self._size_limit = size_limit
        self._store: Any = None  # diskcache.Cache, opened on first use (its import is ~30 ms)

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

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> Any:
        if self._store is None:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            self._store = diskcache.Cache(str(self.directory), size_limit=self._size_limit, eviction_policy="least-recently-used")
        return self._store
