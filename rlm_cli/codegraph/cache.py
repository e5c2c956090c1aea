"""The on-disk cache of parse results: one SQLite file, one row per (engine version, language, text).

Why SQLite rather than a file per entry: a warm run reads every entry of a repository, and one
``SELECT ... WHERE key IN (...)`` over a single file costs a fraction of opening thousands of
small files (``benchmarks/bench_codegraph.py --cache-formats`` measures both); it also keeps
the cache directory to a handful of inodes. Entries are ``FileIndex.to_bytes()`` blobs.

The key is a SHA-256 of the engine version, the language and the text, so a changed file, a
changed query or a new tool version all miss. The engine version is part of the database's
file name too, and databases of other versions are deleted once they are a day old.

The cache is an optimisation only: any error reading or writing it disables it for the run.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from rlm_cli.codegraph.queries import queries_version
from rlm_cli.paths import cache_dir

# Bump when FileIndex changes shape in a way the source digest below would not notice.
FORMAT_VERSION = 1
_STALE_AFTER_S = 24 * 3600
_BATCH = 500  # SQLite's default limit on bound parameters is 999 on old builds


def default_cache_dir() -> Path:
    """``$RLM_CACHE_DIR/codegraph``, else the user cache directory of rlm + ``/codegraph``."""
    return cache_dir() / "codegraph"


@lru_cache(maxsize=1)
def engine_version() -> str:
    """A digest of everything that shapes a parse result: code, queries, grammars, Python."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT_VERSION}:{sys.version_info[:2]}".encode())
    for distribution in ("tree-sitter", "tree-sitter-language-pack"):
        try:
            digest.update(metadata.version(distribution).encode())
        except metadata.PackageNotFoundError:
            digest.update(b"?")
    digest.update(queries_version().encode())
    package = resources.files("rlm_cli.codegraph")
    for module in ("parse.py", "queries.py", "model.py"):
        digest.update(package.joinpath(module).read_bytes())
    return digest.hexdigest()[:16]


def entry_key(language: str, source: bytes) -> bytes:
    digest = hashlib.sha256(engine_version().encode())
    digest.update(language.encode())
    digest.update(b"\0")
    digest.update(source)
    return digest.digest()


class ParseCache:
    """Reads and writes parse results; silently becomes a no-op if the disk says no."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"parse-{engine_version()}.sqlite3"
        self.error: str | None = None
        self._db: sqlite3.Connection | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as error:
                if isinstance(error, sqlite3.OperationalError):
                    raise  # locked or unreadable: leave it to its owner
                # not a database (a crash, a truncated copy): start afresh
                for stale in directory.glob(self.path.name + "*"):
                    stale.unlink()
                self._db = self._open()
        except (sqlite3.Error, OSError) as error:
            self._fail(error)
        else:
            self._remove_stale_versions()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, data BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        except sqlite3.Error:
            db.close()
            raise
        return db

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """The cached blobs of those ``keys`` that are present."""
        if self._db is None:
            return {}
        found: dict[bytes, bytes] = {}
        try:
            for batch in _batches(list(keys), _BATCH):
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT key, data FROM entries WHERE key IN ({marks})", batch
                )
                found.update(rows)
        except sqlite3.Error as error:
            self._fail(error)
            return {}
        return found

    def put_many(self, entries: Iterable[tuple[bytes, bytes]]) -> None:
        if self._db is None:
            return
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO entries (key, data) VALUES (?, ?)", entries
                )
        except sqlite3.Error as error:
            self._fail(error)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    def _remove_stale_versions(self) -> None:
        now = time.time()
        for other in self.directory.glob("parse-*.sqlite3*"):
            if other.name.startswith(self.path.name):
                continue
            try:
                if now - other.stat().st_mtime > _STALE_AFTER_S:
                    other.unlink()
            except OSError:
                pass


def _batches(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
