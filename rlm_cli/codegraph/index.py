"""``CodeIndex``: the questions the REPL asks of the code (``context.symbols`` and friends).

It holds the texts and one ``FileIndex`` per file, and builds what each question needs on first
use: ``Symbol`` objects and name tables for ``symbols``/``source``, a call table for
``callers``, resolved imports for ``imports``, the networkx graph for ``graph``. Building the
index therefore costs little more than parsing, and a question never pays for another.

Conventions of the answers:
- ``path`` arguments take a file path or a directory prefix (``"src/app"`` covers
  ``src/app/x.py``); results follow the order of the files, then of lines.
- ``callers(name)`` reports a call made outside any function or method (module level, a class
  body) as the file's ``<module>`` pseudo-symbol: kind ``module``, name and qualname
  ``<module>``, spanning the whole file. ``source()`` of it is the file's text.
- ``references(name)`` re-parses the files whose text contains ``name`` and keeps the
  occurrences that are whole identifiers in code (not in strings or comments), definitions
  included. Files kept as text only are not searched (``context.grep`` covers them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rlm_cli.codegraph.imports import Resolver
from rlm_cli.codegraph.model import (
    PARSED,
    STATUS_ERRORS,
    FileIndex,
    Import,
    Reference,
    Symbol,
)
from rlm_cli.codegraph.outline import render_outline
from rlm_cli.codegraph.references import find_references

if TYPE_CHECKING:
    import networkx

MODULE_SYMBOL = "<module>"


@dataclass
class BuildStats:
    """Where the time of ``build_code_index`` went, and what the cache did."""

    total_s: float = 0.0
    hash_s: float = 0.0
    cache_read_s: float = 0.0
    parse_s: float = 0.0
    cache_write_s: float = 0.0
    cached_files: int = 0
    parsed_files: int = 0
    processes: int = 1
    cache_path: str | None = None
    cache_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CodeIndex:
    """Symbols, calls, references and imports of a set of files, and their graph."""

    def __init__(
        self, files: Mapping[str, str], entries: Mapping[str, FileIndex], stats: BuildStats
    ) -> None:
        self.files = files
        self.entries = entries
        self.stats = stats
        self._references: dict[str, list[Reference]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ship the plain data only; every table is rebuilt on first use on the other side.
        return {"files": self.files, "entries": self.entries, "stats": self.stats}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["files"], state["entries"], state["stats"])  # type: ignore[misc]

    def __repr__(self) -> str:
        parsed = sum(1 for e in self.entries.values() if e.status in PARSED)
        symbols = sum(len(e.symbols) for e in self.entries.values())
        return f"<CodeIndex {len(self.entries)} files, {parsed} parsed, {symbols} symbols>"

    # -- symbols ---------------------------------------------------------------------------

    @cached_property
    def _symbols_by_path(self) -> dict[str, list[Symbol]]:
        table: dict[str, list[Symbol]] = {}
        for path, entry in self.entries.items():
            if entry.symbols:
                language = entry.language or ""
                table[path] = [
                    Symbol(name, qualname, kind, path, line, start, end, language, signature)
                    for name, qualname, kind, line, start, end, signature, _parent in entry.symbols
                ]
        return table

    @cached_property
    def _symbols_by_name(self) -> dict[str, list[Symbol]]:
        """Bare name and qualified name -> symbols, in file and line order."""
        table: dict[str, list[Symbol]] = {}
        for symbols in self._symbols_by_path.values():
            for symbol in symbols:
                table.setdefault(symbol.name, []).append(symbol)
                if symbol.qualname != symbol.name:
                    table.setdefault(symbol.qualname, []).append(symbol)
        return table

    def symbols(
        self, name: str | None = None, kind: str | None = None, path: str | None = None
    ) -> list[Symbol]:
        """Definitions, filtered by bare name or qualified name, kind, and file or directory."""
        if name is not None:
            found: Iterable[Symbol] = self._symbols_by_name.get(name, ())
        else:
            found = (s for symbols in self._symbols_by_path.values() for s in symbols)
        if kind is not None:
            found = (s for s in found if s.kind == kind)
        if path is not None:
            found = (s for s in found if _under(s.path, path))
        return list(found)

    def source(self, symbol_or_qualname: Symbol | str) -> str:
        """The text of a symbol's definition, decorators included.

        A string is looked up as a qualified name, then as a bare name; it must name exactly
        one symbol (pass a ``Symbol`` from ``symbols()`` to pick among several).
        """
        symbol = symbol_or_qualname
        if isinstance(symbol, str):
            symbol = self._one_symbol(symbol)
        text = self.files[symbol.path]
        if symbol.qualname == MODULE_SYMBOL:
            return text
        # Lines end at "\n" only, as tree-sitter counts them (str.splitlines also splits at
        # form feeds and other separators, which some sources contain).
        lines = text.split("\n")[symbol.start_line - 1 : symbol.end_line]
        ends_file = symbol.end_line >= text.count("\n") + 1
        return "\n".join(lines) + ("" if ends_file else "\n")

    def _one_symbol(self, name: str) -> Symbol:
        matches = [s for s in self._symbols_by_name.get(name, ()) if s.qualname == name]
        if not matches:
            matches = self._symbols_by_name.get(name, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise KeyError(f"no symbol named {name!r}; try symbols() with a bare name or grep")
        listed = ", ".join(repr(s) for s in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise ValueError(
            f"{name!r} names {len(matches)} symbols: {listed}{more}; pass one of "
            f"symbols({name!r}) instead"
        )

    # -- calls -----------------------------------------------------------------------------

    @cached_property
    def _calls_by_name(self) -> dict[str, list[tuple[str, int]]]:
        """Called name -> (path, caller row index or -1) of every call, in file order."""
        table: dict[str, list[tuple[str, int]]] = {}
        for path, entry in self.entries.items():
            for name, _line, _column, caller in entry.calls:
                table.setdefault(name, []).append((path, caller))
        return table

    def callers(self, name: str) -> list[Symbol]:
        """The innermost function or method around each call of ``name``, each once.

        ``name`` is the bare called name (``x.save()`` is a call of ``save``); a qualified
        name (``User.save``, ``Point::new``) is reduced to its last part. Calls outside any
        function come back as the file's ``<module>`` pseudo-symbol.
        """
        name = re.split(r"::|\.|->|#", name)[-1]
        seen: set[tuple[str, int]] = set()
        result: list[Symbol] = []
        for path, caller in self._calls_by_name.get(name, ()):
            if (path, caller) in seen:
                continue
            seen.add((path, caller))
            result.append(self._caller_symbol(path, caller))
        return result

    def _caller_symbol(self, path: str, caller: int) -> Symbol:
        if caller < 0:
            return self.module_symbol(path)
        return self._symbols_by_path[path][caller]

    def module_symbol(self, path: str) -> Symbol:
        """The pseudo-symbol standing for the top level of a file."""
        entry = self.entries[path]
        return Symbol(
            MODULE_SYMBOL, MODULE_SYMBOL, "module", path, 1, 1, max(entry.lines, 1),
            entry.language or "", "",
        )

    # -- references and imports ------------------------------------------------------------

    def references(self, name: str) -> list[Reference]:
        """Every place the identifier ``name`` is used in code, definitions included."""
        if name not in self._references:
            parsed = (
                (path, entry.language)
                for path, entry in self.entries.items()
                if entry.status in PARSED and entry.language is not None
            )
            self._references[name] = find_references(name, parsed, self.files)
        return list(self._references[name])

    @cached_property
    def _imports_by_path(self) -> dict[str, list[Import]]:
        resolver = Resolver(self.files.keys(), self.files)
        return {
            path: resolver.resolve(path, entry.language or "", entry.imports)
            for path, entry in self.entries.items()
            if entry.imports
        }

    def imports(self, path: str | None = None) -> list[Import]:
        """Import statements (one record per imported module) of a file, a directory or all."""
        return [
            record
            for file_path, records in self._imports_by_path.items()
            if path is None or _under(file_path, path)
            for record in records
        ]

    # -- views -----------------------------------------------------------------------------

    def outline(self, path: str | None = None) -> str:
        """A compact tree of the files (under ``path``) and their symbols, as text."""
        selected = [p for p in self.entries if path is None or _under(p, path)]
        return render_outline(
            (p, self.entries[p], self._symbols_by_path.get(p, [])) for p in selected
        )

    @cached_property
    def graph(self) -> networkx.MultiDiGraph:
        """Files and symbols as nodes; defines, contains, imports and calls as edges."""
        from rlm_cli.codegraph.graph import build_graph

        return build_graph(self.entries, self._symbols_by_path, self.imports())

    def summary(self) -> dict[str, Any]:
        """Counts for ``rlm inspect`` and the model's description of the context.

        ``languages`` counts the parsed files; files kept as text only are counted by reason
        in ``text_only`` and listed in ``text_only_files``.
        """
        languages: dict[str, int] = {}
        kinds: dict[str, int] = {}
        text_only: dict[str, str] = {}
        with_errors: list[str] = []
        calls = imports = 0
        for path, entry in self.entries.items():
            if entry.status not in PARSED:
                text_only[path] = entry.status
                continue
            if entry.status == STATUS_ERRORS:
                with_errors.append(path)
            language = entry.language or ""
            languages[language] = languages.get(language, 0) + 1
            for row in entry.symbols:
                kinds[row[2]] = kinds.get(row[2], 0) + 1
            calls += len(entry.calls)
            imports += len(entry.imports)
        reasons: dict[str, int] = {}
        for reason in text_only.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        stats = self.stats
        return {
            "files": len(self.entries),
            "parsed_files": len(self.entries) - len(text_only),
            "parsed_with_errors": len(with_errors),
            "files_with_errors": with_errors,
            "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))),
            "symbols": sum(kinds.values()),
            "symbols_by_kind": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            "calls": calls,
            "imports": imports,
            "text_only": reasons,
            "text_only_files": text_only,
            "index_time_s": round(stats.total_s, 3),
            "cache": {
                "path": stats.cache_path,
                "hits": stats.cached_files,
                "parsed": stats.parsed_files,
                "error": stats.cache_error,
            },
            "processes": stats.processes,
        }


def _under(path: str, prefix: str) -> bool:
    """``path`` is the file ``prefix`` or lies in the directory ``prefix``."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")

