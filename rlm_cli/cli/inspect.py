"""`rlm inspect`: what the context would hold. No model is resolved or called."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.options import MAX_FILE_SIZE, Add, Exclude, Include, MaxFileSize, NoGitignore, Source, inputs


@app.command(no_args_is_help=True)
def inspect(
    source: Source,
    add: Add = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = MAX_FILE_SIZE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    outline: Annotated[bool, typer.Option("--outline", help="Print the outline of files and symbols.")] = False,
) -> None:
    """What the context would hold: files, skipped files and why, size, languages, symbols. No model call."""
    from rlm_cli.api import Rlm

    with guard():
        result = Rlm().inspect(inputs(source, add, include, exclude, no_gitignore, max_file_size))
        if as_json:
            print(json.dumps(result.as_json(), ensure_ascii=False))
        elif outline:
            print(result.index.outline())
        else:
            print(result.as_text())
