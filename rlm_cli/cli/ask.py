"""`rlm ask`: parse the options into an `AskRequest`, run it, print the answer.

With `-c/--continue` it is a follow-up on an earlier run: the positionals are then
`[RUN [SOURCE]] QUESTION` (RUN defaults to `last`; without SOURCE, the earlier run's sources
and filters). `print_outcome` is shared with `rlm resume`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlm_cli.cli.app import app, conclude, guard
from rlm_cli.cli.options import (
    DEFAULTS,
    MAX_FILE_SIZE,
    Add,
    ApiBase,
    AsJson,
    CellTimeout,
    Concurrency,
    Exclude,
    Include,
    MaxConcurrency,
    MaxCost,
    MaxDepth,
    MaxFileSize,
    MaxIterations,
    MaxSubcalls,
    Model,
    NoGitignore,
    Output,
    Quiet,
    Redact,
    Source,
    SubApiBase,
    SubModel,
    Timeout,
    Trace,
    inputs,
    model_flags,
)
from rlm_cli.errors import RlmError, UsageError
from rlm_cli.paths import check_writable

if TYPE_CHECKING:
    from rlm_cli.api import AskRequest, AskResult, Rlm


@app.command(no_args_is_help=True)
def ask(
    source: Source,
    question: Annotated[
        str | None, typer.Argument(help="The question; read from stdin when omitted and SOURCE is not '-'.")
    ] = None,
    c_question: Annotated[str | None, typer.Argument(hidden=True, help="With -c: the QUESTION of RUN SOURCE QUESTION.")] = None,
    follow_up: Annotated[
        bool,
        typer.Option(
            "-c", "--continue",
            help="A follow-up on an earlier run; the arguments are then [RUN [SOURCE]] QUESTION (RUN: an id, a path or"
            " `last`, the default). Same sources unless SOURCE is given, earlier Q&A in the prompt, REPL variables restored.",
        ),
    ] = False,
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = MAX_FILE_SIZE,
    max_iterations: MaxIterations = DEFAULTS.max_iterations,
    max_depth: MaxDepth = DEFAULTS.max_depth,
    max_subcalls: MaxSubcalls = None,
    max_cost: MaxCost = None,
    timeout: Timeout = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
    concurrency: Concurrency = DEFAULTS.concurrency,
    max_concurrency: MaxConcurrency = DEFAULTS.max_concurrency,
    as_json: AsJson = False,
    output: Output = None,
    quiet: Quiet = False,
    trace: Trace = None,
    redact: Redact = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="No model call: files kept and skipped, tokens, the prompt's size, a cost range.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask every sub-call afresh: no answers kept across runs.")] = False,
    schema: Annotated[
        str | None, typer.Option("--schema", help="A JSON Schema (file or inline JSON) the answer must satisfy; printed as JSON.")
    ] = None,
    cite: Annotated[bool, typer.Option("--cite", help="Follow the answer with file:line sources, each checked against the context.")] = False,
    strategy: Annotated[
        str, typer.Option("--strategy", help="auto: answer in one prompt when the input fits the root model's window, else rlm; rlm; direct.")
    ] = "auto",
) -> None:
    """Answer QUESTION about SOURCE.

    The model comes from --model, then RLM_MODEL, then `model` in the config file (RLM_CONFIG, or config.toml in the user config directory), then the bundled local model if the `local` extra is installed. `--model local:/path/model.gguf` serves any GGUF.

    `rlm ask -c "QUESTION"` follows up the last run, `rlm ask -c RUN "QUESTION"` another one.

    Exit codes: 0 answer, 2 usage, 3 input (a source or an earlier run missing or unreadable), 4 model, 5 a limit ended the run, 130 interrupted.
    """
    from rlm_cli.answers import load_schema
    from rlm_cli.api import AskRequest, Limits

    with guard():
        run: str | None = None
        sources: list[str] = [source]
        if follow_up:
            run, sources, question = _follow_up_arguments(source, question, c_question)
            if not sources and (add or include or exclude or no_gitignore or max_file_size != MAX_FILE_SIZE):
                raise UsageError("with -c, give SOURCE again to change the sources or their filters (rlm ask -c RUN SOURCE QUESTION)")
        elif c_question is not None:
            raise UsageError(f"unexpected argument {c_question!r} (a follow-up on an earlier run takes -c)")
        if question is None:
            if source == "-":
                raise UsageError("the question is missing (SOURCE is '-', so stdin holds the input)")
            question = sys.stdin.read() if not sys.stdin.isatty() else ""
        if output is not None:
            check_writable(output, "-o/--output")
        limits = Limits(max_iterations, max_depth, max_subcalls, max_cost, timeout, cell_timeout, concurrency, max_concurrency)
        request = AskRequest(
            inputs(sources, add, include, exclude, no_gitignore, max_file_size),
            question,
            model_flags(model, sub_model, api_base, sub_api_base),
            limits,
            trace,
            redact,
            no_cache,
            schema=load_schema(schema) if schema is not None else None,
            cite=cite,
            strategy=strategy,
            follow_up=run,
        )
        if dry_run:
            if run is not None:
                raise UsageError("--dry-run does not take -c")
            _dry_run(request, as_json, output)
            return
        print_outcome(lambda rlm: rlm.ask(request), as_json, output, quiet)


def _follow_up_arguments(first: str, second: str | None, third: str | None) -> tuple[str, list[str], str | None]:
    """`-c`'s positionals `[RUN [SOURCE]] QUESTION` as (RUN, sources given again, QUESTION)."""
    if second is None:
        return "last", [], first
    if third is None:
        return first, [], second
    return first, [second], third


def print_outcome(run: Callable[[Rlm], AskResult], as_json: bool, output: Path | None, quiet: bool) -> None:
    """Run with the live trace on stderr (unless quiet), print the answer or the JSON object, exit."""
    from rlm_cli.api import Rlm

    view = None
    if not quiet:
        from rlm_cli.trace.console import console_trace  # Rich, ~0.1 s to import: not with -q

        view = console_trace()
    try:
        result = run(Rlm(sinks=[view] if view else []))
    except RlmError as exc:
        if as_json and exc.result is not None:
            _write(output, json.dumps(exc.result.as_json(), ensure_ascii=False) + "\n")
        raise
    finally:
        if view is not None:
            view.close()
    if as_json:
        _write(output, json.dumps(result.as_json(), ensure_ascii=False) + "\n")
    elif (text := result.text()) is not None:
        _write(output, text if text.endswith("\n") else text + "\n")
    conclude(result)


def _dry_run(request: AskRequest, as_json: bool, output: Path | None) -> None:
    """`--dry-run`: the figures (or their JSON object) where the answer would go."""
    from rlm_cli.api import Rlm
    from rlm_cli.dryrun import dry_run

    report = dry_run(request, Rlm().settings(request.models))
    _write(output, (json.dumps(report.as_json(), ensure_ascii=False) if as_json else report.as_text()) + "\n")


def _write(path: Path | None, text: str) -> None:
    """The answer to stdout, or to the file of --output (checked writable before the run)."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        sys.stdout.write(text)  # the run is paid for: do not lose its answer
        sys.stdout.flush()
        raise UsageError(f"cannot write -o/--output {path}: {exc.strerror or exc}; the answer went to stdout") from exc
