"""`rlm ask`: parse the options into an `AskRequest`, run it, print the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlm_cli.cli.app import app, conclude, guard
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
    Redact,
    Source,
    SubApiBase,
    SubModel,
    inputs,
    model_flags,
)
from rlm_cli.errors import RlmError, UsageError
from rlm_cli.paths import check_writable

if TYPE_CHECKING:
    from rlm_cli.api import AskRequest


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
    max_file_size: MaxFileSize = MAX_FILE_SIZE,
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Root model turns.")] = DEFAULTS.max_iterations,
    max_depth: Annotated[
        int, typer.Option("--max-depth", min=1, help="Recursion depth; 1 = sub-calls are plain model calls.")
    ] = DEFAULTS.max_depth,
    max_subcalls: Annotated[int | None, typer.Option("--max-subcalls", min=0, help="Sub-calls allowed in the whole run.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0, help="Stop when the run has cost this much (USD).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.1, help="Seconds for the whole run, loading included.")] = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Requests in flight a provider starts with; raised while it keeps up.")
    ] = DEFAULTS.concurrency,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="The most requests in flight to one provider.")
    ] = DEFAULTS.max_concurrency,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the answer (or JSON) to FILE, not stdout.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No trace on stderr.")] = False,
    trace: Annotated[Path | None, typer.Option("--trace", help="Write the trajectory (JSONL) to FILE.")] = None,
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

    Exit codes: 0 answer, 2 usage, 3 input, 4 model, 5 a limit ended the run, 130 interrupted.
    """
    from rlm_cli.answers import load_schema
    from rlm_cli.api import AskRequest, Limits, Rlm

    with guard():
        if question is None:
            if source == "-":
                raise UsageError("the question is missing (SOURCE is '-', so stdin holds the input)")
            question = sys.stdin.read() if not sys.stdin.isatty() else ""
        if output is not None:
            check_writable(output, "-o/--output")
        limits = Limits(max_iterations, max_depth, max_subcalls, max_cost, timeout, cell_timeout, concurrency, max_concurrency)
        request = AskRequest(
            inputs(source, add, include, exclude, no_gitignore, max_file_size),
            question,
            model_flags(model, sub_model, api_base, sub_api_base),
            limits,
            trace,
            redact,
            no_cache,
            schema=load_schema(schema) if schema is not None else None,
            cite=cite,
            strategy=strategy,
        )
        if dry_run:
            _dry_run(request, as_json, output)
            return
        view = None
        if not quiet:
            from rlm_cli.trace.console import console_trace  # Rich, ~0.1 s to import: not with -q

            view = console_trace()
        try:
            result = Rlm(sinks=[view] if view else []).ask(request)
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
