"""The `rlm` command line: one module per command, all on one Typer app (`cli.app`).

The only package that imports Typer. Commands build a request from their options, call the
library API (`rlm_cli.api`), and print; `cli.app.conclude` alone turns an outcome into an exit
code. Importing a command module registers it, so the list below is the command list.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from rlm_cli.cli import ask, batch, bench, inspect, mcp, repl, resume, runs, serve, show  # noqa: F401  (each registers its command)
from rlm_cli.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> Any:
    """The console-script entry point; with `argv` (a script, a test) it returns or raises
    SystemExit as Typer does, without it (a shell) it ends the process at once."""
    if argv is not None:
        return app(args=argv, prog_name="rlm")
    try:
        app(prog_name="rlm")
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    _exit_now(code)


def _exit_now(code: Any) -> NoReturn:
    """Exit without the interpreter's teardown of every loaded module, measured at ~0.9 s after
    the answer on a loaded machine (0.1 s without it). By now the answer is written, the
    trajectory closed, the worker stopped and its scratch directory removed."""
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the reader has gone
            pass
    os._exit(code or 0)
