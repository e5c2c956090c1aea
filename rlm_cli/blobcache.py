"""A small on-disk cache of blobs by key: one SQLite file per (purpose, version).

Why SQLite rather than a file per entry: a warm run reads every entry of a repository, and one
``SELECT ... WHERE key IN (...)`` over a single file costs a fraction of opening thousands of
small files (``benchmarks/bench_codegraph.py --cache-formats`` measures both); it also keeps
the cache directory to a handful of inodes. The code graph's parse cache and the secret scan's
cache are both one of these.

The cache is an optimisation only: any error reading or writing it disables it for the run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

_STALE_AFTER_S = 24 * 3600
_BATCH = 500  # SQLite's default limit on bound parameters is 999 on old builds


class BlobCache:
    """Reads and writes blobs by key; silently becomes a no-op if the disk says no.

    The database is `<directory>/<stem>-<version>.sqlite3`; databases of other versions of the
    same stem are deleted once they are a day old.
    """

    def __init__(self, directory: Path, stem: str, version: str) -> None:
        self.directory = directory
        self.stem = stem
        self.path = directory / f"{stem}-{version}.sqlite3"
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
        for other in self.directory.glob(f"{self.stem}-*.sqlite3*"):
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
