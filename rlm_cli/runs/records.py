"""One trajectory file read back, tolerantly.

A run killed mid-way has no `run_end`, a crash can leave half a line, a file can be damaged:
lines that are not records are counted and skipped, and only a file with no record at all (or
none readable) is an error (`InputError`, exit 3).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.errors import InputError


@dataclass(frozen=True)
class Trajectory:
    """The parsed records of one trajectory file, and how many lines could not be read."""

    path: Path
    records: list[dict[str, Any]]
    damaged: int = 0  # lines that were not a JSON object with a `type`

    @property
    def id(self) -> str:
        return self.path.stem

    def first(self, kind: str, depth: int = 0) -> dict[str, Any] | None:
        return next((r for r in self.records if r["type"] == kind and r.get("depth", 0) == depth), None)

    def last(self, kind: str, depth: int = 0) -> dict[str, Any] | None:
        return next((r for r in reversed(self.records) if r["type"] == kind and r.get("depth", 0) == depth), None)


def parse_lines(lines: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """The records among `lines`, and the count of lines that were not records."""
    records: list[dict[str, Any]] = []
    damaged = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            damaged += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("type"), str):
            records.append(record)
        else:
            damaged += 1
    return records, damaged


def read_run(path: Path) -> Trajectory:
    """All records of a trajectory; InputError (exit 3) when it cannot be read or holds none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            records, damaged = parse_lines(f)
    except OSError as exc:
        raise InputError(f"cannot read the trajectory {path}: {exc.strerror or exc}") from exc
    if not records:
        raise InputError(f"{path} is not a trajectory: no record in it could be read")
    return Trajectory(path, records, damaged)


LoopKey = tuple[str, int | None]


def loop_key(record: dict[str, Any]) -> LoopKey:
    """Which root loop a record belongs to (for a sub-call: the loop of the cell that made it).

    Records that carry `parent` (the id of the sub-RLM's own `subcall` record; None at the top)
    say it exactly. Older ones only have `depth`, which cannot tell apart two sub-RLMs at the
    same depth; those are grouped by depth, which is right whenever sub-RLMs ran one at a time.
    """
    if "parent" in record:
        parent = record["parent"]
        return ("parent", parent if isinstance(parent, int) else None)
    depth = int(record.get("depth") or 0)
    return ("depth", depth - 1 if record.get("type") == "subcall" else depth)


TOP_LOOPS = (("parent", None), ("depth", 0))
