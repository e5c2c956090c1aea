"""The Typer app, and the one place an outcome becomes a line on stderr and an exit code.

Every command module registers itself on `app` and runs its body under `guard()`. `conclude()`
maps an outcome (an `AskResult`, an `RlmError`, a Ctrl-C, a bug) to its exit code and message;
nothing else in rlm picks an exit code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from rlm_cli import __version__
from rlm_cli.errors import Interrupted, LimitError, RlmError

if TYPE_CHECKING:
    from rlm_cli.api import AskResult

app = typer.Typer(
    name="rlm",
    help="Answer questions about inputs far larger than a model's context window (Recursive Language Models).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

LIMIT_EXIT = LimitError.exit_code


def _version(value: bool) -> None:
    if value:
        print(f"rlm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """rlm: the input lives in a Python REPL as `context`; a root model writes code to read it."""


def conclude(outcome: AskResult | BaseException) -> NoReturn:
    """Say how it ended (one line on stderr, unless it went well) and exit with the code for it."""
    code, line = _exit_for(outcome)
    if line:
        sys.stderr.write(line + "\n")
    raise typer.Exit(code)


def _exit_for(outcome: AskResult | BaseException) -> tuple[int, str | None]:
    if isinstance(outcome, BaseException):
        if isinstance(outcome, (KeyboardInterrupt, Interrupted)):
            return Interrupted.exit_code, "rlm: interrupted"
        if isinstance(outcome, LimitError):
            return outcome.exit_code, f"rlm: stopped: {outcome}"
        if isinstance(outcome, RlmError):
            return outcome.exit_code, f"rlm: error: {outcome}"
        if isinstance(outcome, BrokenPipeError):  # `rlm ... | head`: the reader has all it wanted
            return 0, None
        frame = traceback.extract_tb(outcome.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
        return 1, f"rlm: error: internal error: {type(outcome).__name__}: {outcome} (at {where}; set RLM_DEBUG=1 for the traceback)"
    if outcome.status == "ok" and outcome.answer is not None:
        return 0, None
    return LIMIT_EXIT, f"rlm: stopped: {outcome.error or 'the run ended without an answer'}"


@contextmanager
def guard() -> Iterator[None]:
    """Run a command body; whatever escapes it ends the process through `conclude`."""
    try:
        yield
    except typer.Exit:
        raise
    except BrokenPipeError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        conclude(exc)
    except (RlmError, KeyboardInterrupt) as exc:
        conclude(exc)
    except Exception as exc:  # a bug: say where, and how to see more
        if os.environ.get("RLM_DEBUG"):
            traceback.print_exc()
        conclude(exc)
