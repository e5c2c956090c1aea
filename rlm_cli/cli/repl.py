"""`rlm repl`: a person at the REPL the root model uses, through the library's REPL session.

The terminal side lives here (reading statements, printing what they print); the worker, the
`context` and the sub-calls are `Rlm.repl()`'s, exactly as a run would have them.
"""

from __future__ import annotations

import asyncio
import codeop
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.options import (
    DEFAULTS,
    MAX_FILE_SIZE,
    Add,
    ApiBase,
    CellTimeout,
    Exclude,
    Include,
    MaxFileSize,
    Model,
    NoGitignore,
    Source,
    SubApiBase,
    SubModel,
    inputs,
    model_flags,
)
from rlm_cli.errors import UsageError

if TYPE_CHECKING:
    from rlm_cli.api import ReplRequest, Rlm

REPL_OUTPUT_CHARS = 200_000  # a person can scroll; the model's cap does not apply


@app.command(no_args_is_help=True)
def repl(
    source: Source,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = MAX_FILE_SIZE,
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
) -> None:
    """A person at the REPL the root model uses: `context`, its methods, and llm_query (to the sub-model)."""
    from rlm_cli.api import ReplRequest, Rlm
    from rlm_cli.trace.notices import NoticeLines

    with guard():
        if source == "-":
            raise UsageError("rlm repl reads its input from a file or directory; stdin is the keyboard")
        request = ReplRequest(
            inputs(source, add, include, exclude, no_gitignore, max_file_size),
            model_flags(model, sub_model, api_base, sub_api_base),
            cell_timeout,
        )
        asyncio.run(_serve(Rlm(sinks=[NoticeLines(sys.stderr)]), request, _read_line))


async def _serve(rlm: Rlm, request: ReplRequest, read: Callable[[str], str]) -> None:
    async with rlm.repl(request) as session:
        described = session.describe
        sys.stderr.write(
            f"rlm repl: `context` holds {described['files']:,} file(s), {described['chars']:,} characters;"
            f" llm_query uses {session.model}. Ctrl-D leaves.\n"
        )
        while True:
            try:
                code = await asyncio.to_thread(_read_cell, read)
            except EOFError:
                sys.stderr.write("\n")
                return
            if not code.strip():
                continue
            outcome = await session.execute(code, REPL_OUTPUT_CHARS)
            sys.stdout.write(outcome.output)
            sys.stdout.flush()
            if outcome.timed_out:
                sys.stderr.write("[interrupted: the cell ran past --cell-timeout]\n")
            if outcome.crash:
                sys.stderr.write(f"[the REPL process died: it {outcome.crash}; restarted with `context`]\n")
            if outcome.final is not None:
                sys.stderr.write(f"[FINAL: {outcome.final[:200]}]\n")


def _read_line(prompt: str) -> str:
    """`input()` on a terminal (line editing); from a pipe, the prompt goes to stderr, not stdout."""
    if sys.stdin.isatty():
        return input(prompt)
    sys.stderr.write(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _read_cell(read: Callable[[str], str]) -> str:
    """One statement, however many lines it takes, as Python's own REPL reads it."""
    lines = [read(">>> ")]
    while True:
        try:
            if codeop.compile_command("\n".join(lines), "<repl>", "exec") is not None:
                return "\n".join(lines)
        except (SyntaxError, ValueError, OverflowError):
            return "\n".join(lines)  # the worker shows the error as a cell would
        lines.append(read("... "))
