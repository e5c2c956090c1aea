"""What a caller asks for: the inputs, the question, the models and the limits of one run (or of a resumed one).

Plain frozen values with the CLI's defaults; nothing here reads the environment or touches the
disk until `Inputs.load()` is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.budget import Limits
from rlm_cli.errors import UsageError
from rlm_cli.settings import ModelFlags
from rlm_cli.sources.loader import LoadedSources, LoadOptions, load_sources
from rlm_cli.units import DEFAULT_MAX_FILE_SIZE, parse_size

MAX_QUESTION_CHARS = 100_000


@dataclass(frozen=True)
class Inputs:
    """Which sources, and how their directories are filtered: the same for ask, repl and inspect."""

    sources: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    use_gitignore: bool = True
    max_file_size: str = DEFAULT_MAX_FILE_SIZE  # for files found while walking a directory

    def load(self) -> LoadedSources:
        try:
            size = parse_size(self.max_file_size)
        except ValueError as exc:
            raise UsageError(f"--max-file-size: {exc}") from None
        return load_sources(self.sources, LoadOptions(self.include, self.exclude, self.use_gitignore, size))


@dataclass(frozen=True)
class AskRequest:
    """One question about some inputs. `trace=None` keeps the trajectory in `<cache>/runs`.

    `redact`: replace secrets by markers before the worker sees the text (True), or not (False);
    None applies the default rule (on unless every model is the bundled local one).
    """

    inputs: Inputs
    question: str
    models: ModelFlags = ModelFlags()
    limits: Limits = field(default_factory=Limits)
    trace: Path | None = None
    redact: bool | None = None
    no_cache: bool = False  # no cross-run sub-call cache (`--no-cache`)
    schema: dict[str, Any] | None = None  # a JSON Schema the answer must satisfy (printed as JSON)
    cite: bool = False  # the answer names file:line sources, each checked against the context
    strategy: str = "auto"  # auto | rlm | direct (rlm_cli.strategy)
    # RUN (a run id, a trajectory path, `last`) this question follows up: the earlier questions and
    # answers go into the prompt and its REPL variables are restored; with no sources in `inputs`,
    # the earlier run's are used, and with no model flags, its models.
    follow_up: str | None = None

    def checked_question(self) -> str:
        question = self.question.strip()
        if not question:
            raise UsageError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise UsageError(
                f"the question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}"
                " (put long material in a source, e.g. --add FILE)"
            )
        return question


@dataclass(frozen=True)
class ResumeRequest:
    """Go on with RUN (interrupted, or ended by a limit or an error) with fresh `limits`.

    Its conversation and REPL variables are restored; sources and options are the earlier run's,
    and so are the models unless `models` names some.
    """

    run: str
    limits: Limits = field(default_factory=Limits)
    models: ModelFlags = ModelFlags()
    trace: Path | None = None


@dataclass(frozen=True)
class ReplRequest:
    """A person at the root model's REPL over some inputs; `llm_query` goes to the sub-model."""

    inputs: Inputs
    models: ModelFlags = ModelFlags()
    cell_timeout: float = Limits.cell_timeout
    redact: bool | None = None  # as in AskRequest; the rule looks at the sub-model, llm_query's
