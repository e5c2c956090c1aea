"""The on-disk cache of parse results: a `BlobCache`, one row per (engine version, language, text).

Entries are ``FileIndex.to_bytes()`` blobs (``rlm_cli.blobcache`` says why SQLite).

The key is a SHA-256 of the engine version, the language and the text, so a changed file, a
changed query or a new tool version all miss. The engine version is part of the database's
file name too, and databases of other versions are deleted once they are a day old.

The cache is an optimisation only: any error reading or writing it disables it for the run.
"""

from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from rlm_cli.blobcache import BlobCache
from rlm_cli.codegraph.queries import queries_version
from rlm_cli.paths import cache_dir

# Bump when FileIndex changes shape in a way the source digest below would not notice.
FORMAT_VERSION = 1


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


class ParseCache(BlobCache):
    """Parse results of this engine version in ``<directory>/parse-<version>.sqlite3``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "parse", engine_version())
