"""The row `rlm runs` shows for one trajectory: what the file says about the run, nothing more.

`summarise_file` reads only the head and tail of a file when the run ended normally (run_start
is near the top, run_end holds the totals), and every record when it did not (the totals are
counted from what was recorded). Scores (`--min-score` of the training export) come from
`rlm bench`: a `score` field in the `run_end` record, or a record `{"type": "bench", "score":
...}` anywhere in the file; the last one wins.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.runs.records import Trajectory, parse_lines, read_run

HEAD_LINES = 64  # run_start comes after a few notices (skipped files, isolation warnings)
TAIL_BYTES = 64 * 1024  # enough for run_end and a bench record after it


@dataclass(frozen=True)
class RunSummary:
    """One row of `rlm runs`: what the trajectory says about the run, nothing more."""

    id: str
    path: str
    started: float  # seconds since the epoch: the file's mtime less the last record's `t`
    status: str  # ok | limit | error | interrupted (no run_end) | unreadable (no record at all)
    question: str = ""
    sources: list[str] = field(default_factory=list)
    model: str = ""
    sub_model: str = ""
    iterations: int = 0
    subcalls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    answer: str | None = None
    error: str | None = None
    score: float | None = None
    damaged: int = 0
    follows: str | None = None  # the id of the run this one follows up (`rlm ask -c`)
    resumes: str | None = None  # the id of the run this one resumes (`rlm resume`)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise(trajectory: Trajectory, mtime: float | None = None) -> RunSummary:
    """The `rlm runs` row; with a run_end, head and tail records suffice, without one all are needed."""
    start = trajectory.first("run_start") or {}
    origin = trajectory.first("origin") or {}
    end = trajectory.last("run_end")
    final = trajectory.last("final")
    last_t = max((float(r.get("t") or 0) for r in trajectory.records[-8:]), default=0.0)
    if mtime is None:
        mtime = _mtime(trajectory.path)
    row: dict[str, Any] = {
        "id": trajectory.id,
        "path": str(trajectory.path),
        "started": mtime - last_t,
        "question": str(start.get("question") or ""),
        "sources": [str(s) for s in start.get("sources") or []],
        "model": str(start.get("model") or ""),
        "sub_model": str(start.get("sub_model") or ""),
        "answer": final.get("answer") if final else None,
        "damaged": trajectory.damaged,
        "score": _score(trajectory.records),
        **{link: Path(str(origin[link])).stem for link in ("follows", "resumes") if origin.get(link)},
    }
    if end is not None:
        usage = end.get("usage") or {}
        row |= {
            "status": str(end.get("status") or "error"),
            "iterations": int(end.get("iterations") or 0),
            "subcalls": int(end.get("subcalls") or 0),
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cost_usd": usage.get("cost_usd"),
            "duration_s": float(end.get("duration_s") or 0.0),
            "error": end.get("error"),
        }
    else:  # killed mid-way: count what was recorded
        records = trajectory.records
        tokens_in = tokens_out = 0
        cost: float | None = None
        for r in records:
            if r["type"] in ("root_response", "subcall"):
                usage = r.get("usage") or {}
                tokens_in += int(usage.get("input_tokens") or 0)
                tokens_out += int(usage.get("output_tokens") or 0)
                if usage.get("cost_usd") is not None:
                    cost = (cost or 0.0) + float(usage["cost_usd"])
        row |= {
            "status": "interrupted",
            "iterations": sum(r["type"] == "root_response" and r.get("depth", 0) == 0 for r in records),
            "subcalls": sum(r["type"] == "subcall" for r in records),
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost_usd": cost,
            "duration_s": last_t,
            "error": "no run_end record: the run was interrupted or killed",
        }
    return RunSummary(**row)


def _score(records: list[dict[str, Any]]) -> float | None:
    for r in reversed(records):
        if r["type"] in ("bench", "run_end") and isinstance(r.get("score"), int | float):
            return float(r["score"])
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def summarise_file(path: Path, mtime: float | None = None) -> RunSummary:
    """The row for one file, reading only its head and tail when the run ended normally.

    A file that cannot be read at all becomes an `unreadable` row rather than an error, so one
    bad file does not hide the others from `rlm runs`.
    """
    try:
        records, damaged, whole = _head_and_tail(path)
    except OSError as exc:
        return RunSummary(path.stem, str(path), mtime or 0.0, "unreadable", error=exc.strerror or str(exc))
    if not records:
        return RunSummary(path.stem, str(path), mtime or _mtime(path), "unreadable", error="no record could be read", damaged=damaged)
    trajectory = Trajectory(path, records, damaged)
    if whole or trajectory.last("run_end") is not None:
        return summarise(trajectory, mtime)
    return summarise(read_run(path), mtime)  # no run_end: every record counts


def _head_and_tail(path: Path) -> tuple[list[dict[str, Any]], int, bool]:
    """The records up to run_start and from run_end on, the damaged lines among them, and whether
    that was the whole file (a small file is simply read whole)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= 2 * TAIL_BYTES:
            records, damaged = parse_lines(f.read().decode("utf-8", "replace").splitlines())
            return records, damaged, True
        head: list[str] = []
        for _ in range(HEAD_LINES):
            head.append(f.readline().decode("utf-8", "replace"))
            if '"run_start"' in head[-1]:
                break
        f.seek(size - TAIL_BYTES)
        lines = f.read().decode("utf-8", "replace").splitlines()[1:]  # the first one is a fragment
    tail: list[str] = []
    ended = False
    for line in reversed(lines):  # back to `final` before run_end; a bench score after them is kept too
        tail.insert(0, line)
        record = parse_lines([line])[0]
        kind = record[0]["type"] if record and not record[0].get("depth") else None
        ended = ended or kind == "run_end"
        if ended and kind == "final":
            break
    records, damaged = parse_lines(head + tail)
    return records, damaged, False
