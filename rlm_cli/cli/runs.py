"""`rlm runs` (recent runs, newest first) and `rlm runs export` (training data), from trajectories.

Reads only the trajectory files in the runs directory (`<cache>/runs`): nothing is re-run and no
model is called. Exit codes: 0, 2 for a bad option, 3 when the output file cannot be written.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.paths import check_writable, runs_dir

runs_app = typer.Typer(
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs_app, name="runs")


class Status(str, Enum):
    ok = "ok"
    limit = "limit"
    error = "error"
    interrupted = "interrupted"


class Format(str, Enum):
    chat = "chat"


SourceFilter = Annotated[str | None, typer.Option("--source", help="Only runs with a source containing TEXT.", metavar="TEXT")]


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array of runs.")] = False,
    limit: Annotated[int, typer.Option("-n", help="Show at most N runs.", min=1, metavar="N")] = 20,
    status: Annotated[Status | None, typer.Option("--status", help="Only runs that ended so.")] = None,
    source: SourceFilter = None,
) -> None:
    """Recent runs, newest first: id, when, status, iterations, sub-calls, tokens, cost, time, models, sources, question; `rlm runs export` writes training data.

    A run killed mid-way (no run_end record) shows as `interrupted`; a file with no readable record as `unreadable`.
    The id works as RUN in `rlm show RUN`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rlm_cli.runs.listing import table
    from rlm_cli.runs.store import list_runs, select

    with guard():
        rows = list(select(list_runs(), status.value if status else None, source))[:limit]
        if as_json:
            print(json.dumps([r.as_json() for r in rows], ensure_ascii=False))
        elif rows:
            print(table(rows))
        else:
            sys.stderr.write(f"rlm: no runs{' match' if status or source else ' yet'} in {runs_dir()}\n")


@runs_app.command("export", no_args_is_help=True)
def export(
    file: Annotated[Path, typer.Argument(help="The JSONL file to write ('-' for stdout).")],
    status: Annotated[Status, typer.Option("--status", help="Only runs that ended so.")] = Status.ok,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Only runs `rlm bench` scored at least X.", metavar="X")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="chat: {\"messages\": [...]} per line (OpenAI, TRL).")] = Format.chat,
    source: SourceFilter = None,
) -> None:
    """Write recorded runs as chat fine-tuning examples: system prompt, user turns (question, REPL output), assistant turns (code).

    One JSON object per line. Runs recorded before rlm kept its prompts in the trajectory are skipped and counted.
    """
    from rlm_cli.runs.export import export_chat
    from rlm_cli.runs.output import atomic_writer
    from rlm_cli.runs.store import list_runs, select

    with guard():
        to_stdout = str(file) == "-"
        if not to_stdout:
            check_writable(file, "FILE")
        chosen = list(select(list_runs(), status.value, source, min_score))
        if to_stdout:
            report = export_chat(chosen, sys.stdout)
        else:
            with atomic_writer(file) as out:  # an export that fails leaves an older FILE whole
                report = export_chat(chosen, out)
        skipped = ""
        if report.without_prompts:
            skipped += f"; skipped {len(report.without_prompts)} recorded without prompts"
        if report.unreadable:
            skipped += f"; skipped {len(report.unreadable)} unreadable"
        sys.stderr.write(f"rlm: wrote {report.written} example(s) to {file}{skipped}\n")

