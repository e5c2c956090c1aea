"""The `rlm` command line: one module per command, all on one Typer app (`cli.app`).

The only package that imports Typer. Commands build a request from their options, call the
library API (`rlm_cli.api`), and print; `cli.app.conclude` alone turns an outcome into an exit
code. Importing a command module registers it, so the list below is the command list.
"""

from __future__ import annotations

from typing import Any

from rlm_cli.cli import ask, bench, inspect, repl  # noqa: F401  (each registers its command)
from rlm_cli.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> Any:
    """The console-script entry point."""
    return app(args=argv, prog_name="rlm")
