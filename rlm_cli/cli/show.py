"""`rlm show RUN`: replay a recorded run in the terminal, or write it as one HTML page (`--html FILE`).

No model call: everything comes from the trajectory. RUN is a run id (as `rlm runs` lists it, or a
unique start of one), a trajectory path, or `last`. Exit codes: 0, 2 for a bad option or an
unwritable FILE, 3 for an unknown run or a file that holds no record.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.paths import check_writable


@app.command(no_args_is_help=True)
def show(
    run: Annotated[str, typer.Argument(help="A run id (see `rlm runs`), a trajectory path, or `last`.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write one self-contained HTML page to FILE instead.", metavar="FILE")
    ] = None,
) -> None:
    """Replay RUN as the live trace showed it, then its answer; or write an HTML viewer with --html FILE."""
    from rlm_cli.runs.records import read_run
    from rlm_cli.runs.store import resolve

    with guard():
        if html is not None:
            check_writable(html, "--html")
        trajectory = read_run(resolve(run))
        if trajectory.damaged:
            sys.stderr.write(f"rlm: warning: {trajectory.path}: skipped {trajectory.damaged} damaged line(s)\n")
        if html is not None:
            from rlm_cli.runs.html import render
            from rlm_cli.runs.output import write_atomically

            write_atomically(html, render(trajectory))
            sys.stderr.write(f"rlm: wrote {html}\n")
            return
        from rlm_cli.runs.replay import events
        from rlm_cli.trace.console import replay_trace

        view = replay_trace()
        for event in events(trajectory.records):
            view.emit(event)
        view.close()
        final = trajectory.last("final")
        if trajectory.last("run_end") is None:
            sys.stderr.write("rlm: incomplete: the run has no run_end record (it was interrupted or killed)\n")
        if final is not None and final.get("answer") is not None:
            answer = str(final["answer"])
            sys.stdout.write(answer if answer.endswith("\n") else answer + "\n")
