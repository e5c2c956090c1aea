"""The records of the code graph: what one file's parse yields, and what the REPL hands out.

``FileIndex`` is the result of parsing one file. It holds plain tuples only, so it pickles,
marshals and travels between processes cheaply, and it does not name its path: two files with
the same text share one cached entry. ``Symbol``, ``Reference`` and ``Import`` are what
``CodeIndex`` returns to callers, built from those rows on demand.
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass

#: A file was parsed cleanly.
STATUS_OK = "ok"
#: Parsed, but the tree holds syntax errors; what could be read was indexed.
STATUS_ERRORS = "parsed with errors"
# Reasons a file is kept as text only.
SKIP_UNKNOWN_LANGUAGE = "unknown language"
SKIP_TOO_LARGE = "too large"
SKIP_PARSE_ERROR = "parse error"

#: Statuses of files whose symbols, calls and imports were indexed.
PARSED = frozenset({STATUS_OK, STATUS_ERRORS})


# Rows are plain tuples, not NamedTuples: marshal stores only exact tuples, and loading a few
# hundred thousand call rows must not cost a Python call each. Field positions:
#   SymbolRow  (name, qualname, kind, line, start_line, end_line, signature, parent)
#              parent: index of the enclosing symbol in the same file, -1 at top level
#   CallRow    (name, line, column, caller)
#              column: 0-based, in bytes of the UTF-8 line; caller: index of the innermost
#              enclosing function or method, -1 outside any
#   ImportRow  (line, text, modules, names)
SymbolRow = tuple[str, str, str, int, int, int, str, int]
CallRow = tuple[str, int, int, int]
ImportRow = tuple[int, str, tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class FileIndex:
    """What parsing one file found. Rows are plain tuples so the record stays cheap to ship."""

    language: str | None
    status: str
    lines: int
    symbols: tuple[SymbolRow, ...] = ()
    calls: tuple[CallRow, ...] = ()
    imports: tuple[ImportRow, ...] = ()

    def to_bytes(self) -> bytes:
        """A compact serialisation (marshal of plain tuples: fast to write and to read back)."""
        return marshal.dumps(
            (self.language, self.status, self.lines, self.symbols, self.calls, self.imports)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> FileIndex:
        return cls(*marshal.loads(data))


@dataclass(frozen=True, slots=True)
class Symbol:
    """A definition: a function, method, class, or a language's own kind (struct, enum, ...).

    ``line`` holds the name; ``start_line``..``end_line`` is the whole definition, decorators
    included; ``signature`` is the line holding the name, stripped.
    """

    name: str
    qualname: str
    kind: str
    path: str
    line: int
    start_line: int
    end_line: int
    language: str
    signature: str

    def __repr__(self) -> str:
        return f"<{self.kind} {self.qualname} {self.path}:{self.start_line}-{self.end_line}>"


@dataclass(frozen=True, slots=True)
class Reference:
    """One place an identifier is used in code (not in a comment or a string)."""

    path: str
    line: int
    column: int  # 1-based, in characters
    text: str  # the whole line, stripped

    def __repr__(self) -> str:
        return f"<ref {self.path}:{self.line}:{self.column} {self.text[:60]!r}>"


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module of an import statement, resolved to a repository file if possible."""

    path: str
    line: int
    text: str
    module: str
    names: tuple[str, ...]
    resolved: str | None

    def __repr__(self) -> str:
        target = f" -> {self.resolved}" if self.resolved else ""
        return f"<import {self.module} {self.path}:{self.line}{target}>"
