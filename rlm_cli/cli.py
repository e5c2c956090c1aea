"""The `rlm` command line: parse options, build a config, call the engine, print the answer.

The only module that imports Typer. Every `RlmError` becomes one line on stderr and its exit
code here, in `_guard`; stdout carries the answer (or the `--json` object) and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from rlm_cli import __version__
from rlm_cli.errors import InputError, Interrupted, RlmError, UsageError

if TYPE_CHECKING:  # the engine is imported only by the command that runs
    from rlm_cli.app import Inputs

app = typer.Typer(
    name="rlm",
    help="Answer questions about inputs far larger than a model's context window (Recursive Language Models).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# Options shared by `ask` and `inspect`: how sources are loaded.
Add = Annotated[list[str] | None, typer.Option("--add", help="Another source in the same context (repeatable).")]
Include = Annotated[list[str] | None, typer.Option("--include", help="Only files matching this glob (repeatable).")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="Drop files matching this glob (repeatable).")]
NoGitignore = Annotated[bool, typer.Option("--no-gitignore", help="Load files that .gitignore excludes.")]
MaxFileSize = Annotated[str, typer.Option("--max-file-size", help="Skip directory files larger than this (e.g. 5M).")]
Source = Annotated[str, typer.Argument(help="A file, a directory, a git repository (path or URL), or '-' for stdin.")]
# ... and by `ask` and `repl`: which models answer.
Model = Annotated[
    str | None, typer.Option("-m", "--model", help="Root model: any litellm model string, or local / local:PATH.gguf.")
]
SubModel = Annotated[
    str | None, typer.Option("-s", "--sub-model", help="Model for sub-calls. Else RLM_SUB_MODEL, else the root model.")
]
ApiBase = Annotated[
    str | None, typer.Option("--api-base", help="OpenAI-compatible server URL for root and sub-calls (env RLM_API_BASE).")
]
SubApiBase = Annotated[str | None, typer.Option("--sub-api-base", help="A different server URL for sub-calls.")]
CellTimeout = Annotated[float, typer.Option("--cell-timeout", min=0.1, help="Seconds for one code cell.")]


def _inputs(
    source: str, add: list[str] | None, include: list[str] | None, exclude: list[str] | None, no_gitignore: bool, max_file_size: str
) -> Inputs:
    from rlm_cli.app import Inputs

    return Inputs((source, *(add or ())), tuple(include or ()), tuple(exclude or ()), not no_gitignore, max_file_size)


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


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"rlm: error: {message}\n")
    raise typer.Exit(code)


@contextmanager
def _guard() -> Iterator[None]:
    """The one place errors become a line on stderr and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except RlmError as exc:
        _fail(str(exc), exc.exit_code)
    except BrokenPipeError:  # `rlm ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        sys.stderr.write("rlm: interrupted\n")
        raise typer.Exit(Interrupted.exit_code) from None
    except Exception as exc:  # a bug: say where, and how to see more
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
        if os.environ.get("RLM_DEBUG"):
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (at {where}; set RLM_DEBUG=1 for the traceback)", 1)


@dataclass(frozen=True)
class _Output:
    """stdout, or the file of --output."""

    json: bool
    path: Path | None

    def write(self, text: str) -> None:
        if self.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            self.path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write --output {self.path}: {exc.strerror or exc}") from exc


@app.command(no_args_is_help=True)
def ask(
    source: Source,
    question: Annotated[
        str | None, typer.Argument(help="The question; read from stdin when omitted and SOURCE is not '-'.")
    ] = None,
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = "5M",
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Root model turns.")] = 30,
    max_depth: Annotated[int, typer.Option("--max-depth", min=1, help="Recursion depth; 1 = sub-calls are plain model calls.")] = 1,
    max_subcalls: Annotated[int | None, typer.Option("--max-subcalls", min=0, help="Sub-calls allowed in the whole run.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0, help="Stop when the run has cost this much (USD).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.1, help="Seconds for the whole run.")] = None,
    cell_timeout: CellTimeout = 300.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Sub-calls in flight at once.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the answer (or JSON) to FILE, not stdout.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No trace on stderr.")] = False,
    trace: Annotated[Path | None, typer.Option("--trace", help="Write the trajectory (JSONL) to FILE.")] = None,
) -> None:
    """Answer QUESTION about SOURCE.

    The model comes from --model, then RLM_MODEL, then `model` in the config file (RLM_CONFIG, or config.toml in the user config directory), then the bundled local model if the `local` extra is installed. `--model local:/path/model.gguf` serves any GGUF.

    Exit codes: 0 answer, 2 usage, 3 input, 4 model, 5 a limit ended the run, 130 interrupted.
    """
    from rlm_cli.app import AskRequest, ModelFlags, run_ask

    with _guard():
        if question is None:
            if source == "-":
                raise UsageError("the question is missing (SOURCE is '-', so stdin holds the input)")
            question = sys.stdin.read() if not sys.stdin.isatty() else ""
        request = AskRequest(
            inputs=_inputs(source, add, include, exclude, no_gitignore, max_file_size),
            question=question,
            models=ModelFlags(model, sub_model, api_base, sub_api_base),
            max_iterations=max_iterations,
            max_depth=max_depth,
            max_subcalls=max_subcalls,
            max_cost=max_cost,
            timeout=timeout,
            cell_timeout=cell_timeout,
            concurrency=concurrency,
            trace=trace,
        )
        outcome = run_ask(request, quiet=quiet)
        if outcome.exit_code == Interrupted.exit_code:
            sys.stderr.write("rlm: interrupted\n")
        elif outcome.error and outcome.status != "ok":
            label = "stopped" if outcome.status == "limit" else "error"
            sys.stderr.write(f"rlm: {label}: {outcome.error}\n")
        out = _Output(as_json, output)
        if as_json:
            out.write(json.dumps(outcome.as_json(), ensure_ascii=False) + "\n")
        elif outcome.answer is not None:
            out.write(outcome.answer if outcome.answer.endswith("\n") else outcome.answer + "\n")
        raise typer.Exit(outcome.exit_code)


@app.command(no_args_is_help=True)
def inspect(
    source: Source,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = "5M",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    outline: Annotated[bool, typer.Option("--outline", help="Print the outline of files and symbols.")] = False,
) -> None:
    """What the context would hold: files, skipped files and why, size, languages, symbols. No model call."""
    from rlm_cli.inspection import inspect_sources

    with _guard():
        loaded = _inputs(source, add, include, exclude, no_gitignore, max_file_size).load()
        result = inspect_sources(loaded)
        if as_json:
            print(json.dumps(result.as_json(), ensure_ascii=False))
        elif outline:
            print(result.index.outline())
        else:
            print(result.as_text())


@app.command(no_args_is_help=True)
def repl(
    source: Source,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = "5M",
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    cell_timeout: CellTimeout = 300.0,
) -> None:
    """A person at the REPL the root model uses: `context`, its methods, and llm_query (to the sub-model)."""
    from rlm_cli.app import ModelFlags, ReplRequest, run_repl

    with _guard():
        if source == "-":
            raise UsageError("rlm repl reads its input from a file or directory; stdin is the keyboard")
        request = ReplRequest(
            inputs=_inputs(source, add, include, exclude, no_gitignore, max_file_size),
            models=ModelFlags(model, sub_model, api_base, sub_api_base),
            cell_timeout=cell_timeout,
        )
        raise typer.Exit(run_repl(request))


def main(argv: list[str] | None = None) -> Any:
    """The console-script entry point."""
    return app(args=argv, prog_name="rlm")
