"""What the root prompt, the trace and the trajectory say about a context: `ContextSummary`.

The host builds it once per worker from the files it hands over (`ContextSummary.of`), with the
code graph's counts and the repository's facts when there are any; nothing reads it back from
the worker. It holds sizes, counts and paths, never the input's text. The trajectory's
`run_start.context` is `dataclasses.asdict` of it.
"""

from __future__ import annotations

import itertools
import posixpath
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlm_cli.sources.context import file_header
from rlm_cli.sources.git import RepoInfo

SHOWN_PATHS = 20
LARGEST_FILES = 5


@dataclass(frozen=True, kw_only=True)
class CodeSummary:
    """The code graph's counts, as the prompt states them."""

    parsed_files: int
    languages: Mapping[str, int]  # language -> parsed files, most first
    symbols: int
    symbols_by_kind: Mapping[str, int]  # kind -> symbols, most first
    text_only: Mapping[str, int]  # reason a file was not parsed -> files
    index_time_s: float

    @classmethod
    def of(cls, summary: Mapping[str, Any]) -> CodeSummary:
        """From `CodeIndex.summary()`."""
        return cls(
            parsed_files=summary["parsed_files"],
            languages=dict(summary["languages"]),
            symbols=summary["symbols"],
            symbols_by_kind=dict(summary["symbols_by_kind"]),
            text_only=dict(summary["text_only"]),
            index_time_s=summary["index_time_s"],
        )


@dataclass(frozen=True, kw_only=True)
class ContextSummary:
    """Size and shape of a context (the REPL's `context` over `files`), never its text."""

    type: str = "Context (str)"
    chars: int  # len(context): with several files, headers and closing newlines included
    lines: int
    files: int
    paths: tuple[str, ...]  # the first SHOWN_PATHS, in load order
    largest_files: tuple[tuple[str, int], ...]  # (path, chars), largest first
    extensions: Mapping[str, int]  # extension (or "(none)") -> files, most first
    code: CodeSummary | None = None
    repository: RepoInfo | None = None

    @classmethod
    def of(
        cls, files: Mapping[str, str], code: CodeSummary | None = None, repository: RepoInfo | None = None
    ) -> ContextSummary:
        """The summary of `Context(files)`, computed without joining the texts."""
        chars = lines = 0
        several = len(files) > 1
        for path, text in files.items():
            open_line = text and not text.endswith("\n")
            chars += len(text)
            lines += text.count("\n") + bool(open_line)
            if several:  # each text opens with a header line and ends with a newline
                chars += len(file_header(path)) + bool(open_line)
                lines += 1
        sizes = sorted(((path, len(text)) for path, text in files.items()), key=lambda item: item[1], reverse=True)
        return cls(
            chars=chars,
            lines=lines,
            files=len(files),
            paths=tuple(itertools.islice(files, SHOWN_PATHS)),
            largest_files=tuple(sizes[:LARGEST_FILES]),
            extensions=dict(Counter(_extension(path) for path in files).most_common()),
            code=code,
            repository=repository,
        )

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> ContextSummary:
        """Back from a trajectory's `run_start.context` (`dataclasses.asdict` of one)."""
        code, repository = data.get("code"), data.get("repository")
        return cls(
            type=str(data.get("type", "Context (str)")),
            chars=int(data.get("chars", 0)),
            lines=int(data.get("lines", 0)),
            files=int(data.get("files", 0)),
            paths=tuple(data.get("paths", ())),
            largest_files=tuple((str(p), int(n)) for p, n in data.get("largest_files", ())),
            extensions=dict(data.get("extensions", {})),
            code=CodeSummary.of(code) if isinstance(code, Mapping) else None,
            repository=RepoInfo(str(repository.get("name")), repository.get("commit"), repository.get("remote_url"))
            if isinstance(repository, Mapping)
            else None,
        )


def _extension(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[1].lower() or "(none)"
