"""The hand-off of the input from the host to a worker: one blob, one format, one module.

`Handoff.of(files, code, repository)` is built once by the host: the files, the parsed code
index, and the `ContextSummary` the prompt states (the worker never describes itself).

The host writes the files' texts and the parsed code index into an anonymous, sealed memory
file (`memfd_create`, then F_SEAL_WRITE/GROW/SHRINK/SEAL) that the worker inherits as a file
descriptor, maps and decodes. No path is involved, so nothing in the scratch directory (which
the worker owns) is ever read back by the host, and a cell cannot swap the context a restarted
worker gets: every start writes a fresh blob from the host's own copy of the files. Where
memfd is missing (not Linux), the blob is an unlinked file made in a private 0700 directory
outside the scratch directory.

The worker trusts the host, not the reverse, yet nothing here needs pickle: texts are UTF-8
(`surrogatepass`, so any str survives), code index entries are `FileIndex.to_bytes` (marshal
of plain tuples), and the manifest is JSON. Layout:

    file texts, one after another         UTF-8, written in slices (no whole-input copy)
    code index entries, one after another FileIndex.to_bytes()
    manifest                              JSON {"v", "files": [[path, nbytes], ...],
                                               "code": null | {"entries": [[path, nbytes], ...],
                                                               "stats": BuildStats as a dict}}
    trailer                               8-byte big-endian manifest length, then MAGIC

The worker maps the blob read-only and decodes each file from the mapping, so it holds one
copy of each text once the mapping is gone.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the worker imports this module before it is confined: keep it light
    from rlm_cli.codegraph.index import CodeIndex
    from rlm_cli.sources.context import Context
    from rlm_cli.sources.git import RepoInfo
    from rlm_cli.sources.summary import CodeSummary, ContextSummary

FORMAT = 1
MAGIC = b"RLMHAND1"
_TRAILER = struct.Struct(">Q")
SLICE_CHARS = 1 << 22  # characters encoded at a time: the host never holds a whole-input bytes copy


@dataclass(frozen=True)
class Handoff:
    """What a worker is given at every start: the files and, for code, the parsed index;
    and what the host says about them (`summary`)."""

    files: Mapping[str, str]
    summary: ContextSummary
    code: CodeIndex | None = None

    @classmethod
    def of(
        cls,
        files: Mapping[str, str],
        code: tuple[CodeIndex, CodeSummary] | None = None,
        repository: RepoInfo | None = None,
    ) -> Handoff:
        from rlm_cli.sources.summary import ContextSummary

        index, code_summary = code if code is not None else (None, None)
        return cls(files, ContextSummary.of(files, code_summary, repository), index)

    def open(self) -> tuple[int, int]:
        """A new descriptor holding the blob, sealed where the OS can, and its size in bytes.

        The caller passes it to the worker (`pass_fds`) and closes its own copy after the spawn.
        """
        fd = _anonymous_file()
        try:
            with open(fd, "wb", closefd=False) as out:
                self._write(out)
            _seal(fd)
            return fd, os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise

    def _write(self, out: IO[bytes]) -> None:
        files = [[path, _write_text(out, text)] for path, text in self.files.items()]
        code = None
        if self.code is not None:
            entries = []
            for path, entry in self.code.entries.items():
                data = entry.to_bytes()
                out.write(data)
                entries.append([path, len(data)])
            code = {"entries": entries, "stats": asdict(self.code.stats)}
        manifest = json.dumps({"v": FORMAT, "files": files, "code": code}).encode("ascii")
        out.write(manifest)
        out.write(_TRAILER.pack(len(manifest)) + MAGIC)


def _write_text(out: IO[bytes], text: str) -> int:
    written = 0
    for start in range(0, len(text), SLICE_CHARS):
        written += out.write(text[start : start + SLICE_CHARS].encode("utf-8", "surrogatepass"))
    return written


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("rlm-context", os.MFD_CLOEXEC | getattr(os, "MFD_ALLOW_SEALING", 0))
    private = tempfile.mkdtemp(prefix="rlm-handoff-")  # 0700, outside any scratch directory
    try:
        fd, name = tempfile.mkstemp(dir=private)
        os.unlink(name)
        return fd
    finally:
        os.rmdir(private)


def _seal(fd: int) -> None:
    """Make the blob immutable (Linux memfd); elsewhere the unlinked file simply has no name."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    with contextlib.suppress(OSError):  # not a memfd (no sealing support): still unnamed
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)


# -- worker side --------------------------------------------------------------------------------


def load(fd: int) -> Context:
    """The worker's `context` from the inherited descriptor `fd`, which it then closes."""
    from rlm_cli.sources.context import Context

    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as blob:
            manifest = _manifest(blob)
            files, code = _decode(blob, manifest)
    finally:
        os.close(fd)
    context = Context(files)
    del files  # a one-file Context holds its own copy of the text; drop the decoded one
    if code is not None:
        from rlm_cli.codegraph.index import BuildStats, CodeIndex

        entries, stats = code
        context.attach_code_index(CodeIndex(context.files, entries, BuildStats(**stats)))
    return context


def _manifest(blob: mmap.mmap) -> dict[str, Any]:
    end = len(blob) - len(MAGIC)
    if end < _TRAILER.size or blob[end:] != MAGIC:
        raise ValueError("the context hand-off is not a blob of this format")
    (length,) = _TRAILER.unpack(blob[end - _TRAILER.size : end])
    start = end - _TRAILER.size - length
    manifest: dict[str, Any] = json.loads(blob[start : end - _TRAILER.size])
    if manifest.get("v") != FORMAT:
        raise ValueError(f"context hand-off format {manifest.get('v')}, expected {FORMAT}")
    return manifest


def _decode(blob: mmap.mmap, manifest: dict[str, Any]) -> tuple[dict[str, str], tuple[dict[str, Any], dict[str, Any]] | None]:
    files: dict[str, str] = {}
    offset = 0
    with memoryview(blob) as view:
        for path, size in manifest["files"]:
            with view[offset : offset + size] as piece:
                files[path] = str(piece, "utf-8", "surrogatepass")
            offset += size
        code = manifest["code"]
        if code is None:
            return files, None
        from rlm_cli.codegraph.model import FileIndex

        entries = {}
        for path, size in code["entries"]:
            entries[path] = FileIndex.from_bytes(bytes(view[offset : offset + size]))
            offset += size
    return files, (entries, code["stats"])
