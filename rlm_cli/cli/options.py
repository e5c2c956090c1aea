"""Options shared by several commands, declared once with their help and defaults.

Only light modules are imported here: `rlm --help` and `rlm --version` load no engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlm_cli.budget import Limits
from rlm_cli.units import DEFAULT_MAX_FILE_SIZE

if TYPE_CHECKING:
    from rlm_cli.api import Inputs, ModelFlags

DEFAULTS = Limits()
MAX_FILE_SIZE = DEFAULT_MAX_FILE_SIZE

# How sources are loaded: ask, inspect, repl.
Source = Annotated[str, typer.Argument(help="A file, a directory, a git repository (path or URL), or '-' for stdin.")]
Add = Annotated[list[str] | None, typer.Option("--add", help="Another source in the same context (repeatable).")]
Include = Annotated[list[str] | None, typer.Option("--include", help="Only files matching this glob (repeatable).")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="Drop files matching this glob (repeatable).")]
NoGitignore = Annotated[bool, typer.Option("--no-gitignore", help="Load files that .gitignore excludes.")]
MaxFileSize = Annotated[
    str, typer.Option("--max-file-size", help="Skip files found in directories larger than this (5M = 5,000,000 bytes).")
]
# Which models answer: ask, repl.
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
CellTimeout = Annotated[float, typer.Option("--cell-timeout", min=0.1, help="Seconds for one code cell, not counting its wait for sub-calls (up to 10x this).")]
# Budgets and output of a run: ask, resume.
MaxIterations = Annotated[int, typer.Option("--max-iterations", min=1, help="Root model turns.")]
MaxDepth = Annotated[int, typer.Option("--max-depth", min=1, help="Recursion depth; 1 = sub-calls are plain model calls.")]
MaxSubcalls = Annotated[int | None, typer.Option("--max-subcalls", min=0, help="Sub-calls allowed in the whole run.")]
MaxCost = Annotated[float | None, typer.Option("--max-cost", min=0.0, help="Stop when the run has cost this much (USD).")]
Timeout = Annotated[float | None, typer.Option("--timeout", min=0.1, help="Seconds for the whole run, loading included.")]
Concurrency = Annotated[
    int, typer.Option("--concurrency", min=1, help="Requests in flight a provider starts with; raised while it keeps up.")
]
MaxConcurrency = Annotated[int, typer.Option("--max-concurrency", min=1, help="The most requests in flight to one provider.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer.")]
Output = Annotated[Path | None, typer.Option("-o", "--output", help="Write the answer (or JSON) to FILE, not stdout.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No trace on stderr.")]
Trace = Annotated[Path | None, typer.Option("--trace", help="Write the trajectory (JSONL) to FILE.")]
# What leaves the machine: ask, repl.
Redact = Annotated[
    bool | None,
    typer.Option(
        "--redact/--no-redact",
        help="Replace secrets (keys, tokens, passwords, private keys) by [REDACTED:kind] before a model sees"
        " the input. Default: on, unless every model is the bundled local one.",
    ),
]


def inputs(
    source: str | list[str], add: list[str] | None, include: list[str] | None, exclude: list[str] | None, no_gitignore: bool, max_file_size: str
) -> Inputs:
    """No sources at all (`rlm ask -c` without SOURCE): the earlier run's."""
    from rlm_cli.api import Inputs

    named = [source] if isinstance(source, str) else source
    return Inputs((*named, *(add or ())), tuple(include or ()), tuple(exclude or ()), not no_gitignore, max_file_size)


def model_flags(model: str | None, sub_model: str | None, api_base: str | None, sub_api_base: str | None) -> ModelFlags:
    from rlm_cli.api import ModelFlags

    return ModelFlags(model, sub_model, api_base, sub_api_base)
