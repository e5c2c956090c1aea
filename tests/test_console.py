"""The stderr trace renders hostile text visibly: escape sequences never reach the terminal raw."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from rlm_cli.events import Cell, CellStart, Notice, RootResponse, RunEnd, RunStart, Usage
from rlm_cli.sources.summary import ContextSummary
from rlm_cli.trace.console import ConsoleTrace

CLEAR, TITLE, CLIPBOARD, BIDI = "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\x1b]52;c;ZXZpbA==\x07", "\u202e"
HOSTILE = f"a{CLEAR}b{TITLE}c{CLIPBOARD}d{BIDI}e\r"


def _render(live: bool) -> str:
    out = StringIO()
    trace = ConsoleTrace(Console(file=out, width=100, force_terminal=live, color_system="standard" if live else None), live=live)
    summary = ContextSummary.of({f"name{TITLE}.txt": "x\n"})
    trace.emit(RunStart([], "openai/root", "openai/sub", {}, "0.1.0", summary, "q?"))
    trace.emit(Notice(f"skipped {HOSTILE}"))
    trace.emit(RootResponse(1, f"Let me look. {HOSTILE}\n```repl\nprint(1)\n```", Usage(), 0.1))
    trace.emit(CellStart(1, 1, f"print('{HOSTILE}')"))
    trace.emit(Cell(1, 1, f"print('{HOSTILE}')", f"out {HOSTILE}", 10, 0.1, f"Err{TITLE}"))
    trace.emit(RunEnd("error", 1, 0, Usage(), 0.2, f"worker said {HOSTILE}"))
    trace.close()
    return out.getvalue()


@pytest.mark.parametrize("live", [False, True])
def test_escape_sequences_are_shown_not_sent(live: bool) -> None:
    text = _render(live)
    for raw in (CLEAR, TITLE, CLIPBOARD, BIDI, "\x07"):
        assert raw not in text
    if not live:  # plain lines: no control character at all, and the escapes are readable
        assert "\x1b" not in text and "\r" not in text
        assert text.count("\\x1b[2J") >= 5 and "name\\x1b]0;pwned\\x07.txt" in text and "\\u202e" in text
