"""Finding runs: the runs directory, the list newest first, filters, and RUN as the CLI takes it.

Every `rlm ask` leaves a JSONL trajectory, by default in `<cache>/runs/` (newest 50 kept).
RUN is `last`, a run id (the file's stem, or a unique start of one) or a trajectory path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rlm_cli.errors import InputError
from rlm_cli.paths import runs_dir
from rlm_cli.runs.index import RunIndex
from rlm_cli.runs.summary import RunSummary


def trajectories(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.glob("*.jsonl") if p.is_file()]
    except OSError:
        return []


def list_runs(directory: Path | None = None) -> list[RunSummary]:
    """Every run in `directory` (default: the runs directory), newest first."""
    directory = directory or runs_dir()
    return sorted(RunIndex(directory).summaries(trajectories(directory)), key=lambda s: s.started, reverse=True)


def select(
    runs: Iterable[RunSummary], status: str | None = None, source: str | None = None, min_score: float | None = None
) -> Iterator[RunSummary]:
    """The runs that pass the `rlm runs` filters."""
    for run in runs:
        if status is not None and run.status != status:
            continue
        if source is not None and not any(source in s for s in run.sources):
            continue
        if min_score is not None and (run.score is None or run.score < min_score):
            continue
        yield run


def resolve(run: str, directory: Path | None = None) -> Path:
    """RUN as the CLI takes it: `last`, a run id (or a unique start of one), or a trajectory path."""
    directory = directory or runs_dir()
    if run == "last":
        runs = list_runs(directory)
        if not runs:
            raise InputError(f"no runs yet in {directory}")
        return Path(runs[0].path)
    path = Path(run).expanduser()
    if path.suffix == ".jsonl" or os.sep in run or "/" in run:
        if not path.is_file():
            raise InputError(f"no trajectory file {run}")
        return path
    exact = directory / f"{run}.jsonl"
    if exact.is_file():
        return exact
    matches = sorted(p for p in trajectories(directory) if p.stem.startswith(run))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InputError(f"run id {run!r} is ambiguous: {', '.join(p.stem for p in matches[:5])}{', ...' if len(matches) > 5 else ''}")
    raise InputError(f"no run {run!r} in {directory} (`rlm runs` lists them)")
