"""Render the outline: each file on a line, its symbols indented under it by nesting.

    app/models.py  python, 120 lines
      class User  12-80
        method save  40-52
      function load  84-120
    README.md  text only (unknown language), 30 lines
"""

from __future__ import annotations

from collections.abc import Iterable

from rlm_cli.codegraph.model import PARSED, STATUS_ERRORS, FileIndex, Symbol


def render_outline(files: Iterable[tuple[str, FileIndex, list[Symbol]]]) -> str:
    out: list[str] = []
    for path, entry, symbols in files:
        out.append(f"{path}  {_describe(entry)}")
        depths: list[int] = []
        for row, symbol in zip(entry.symbols, symbols):
            parent = row[7]
            depth = depths[parent] + 1 if 0 <= parent < len(depths) else 1
            depths.append(depth)
            span = (
                str(symbol.start_line)
                if symbol.start_line == symbol.end_line
                else f"{symbol.start_line}-{symbol.end_line}"
            )
            out.append(f"{'  ' * depth}{symbol.kind} {symbol.name}  {span}")
    return "\n".join(out) + ("\n" if out else "")


def _describe(entry: FileIndex) -> str:
    lines = f"{entry.lines} line{'s' if entry.lines != 1 else ''}"
    if entry.status not in PARSED:
        return f"text only ({entry.status}), {lines}"
    errors = ", with syntax errors" if entry.status == STATUS_ERRORS else ""
    return f"{entry.language}, {lines}{errors}"
