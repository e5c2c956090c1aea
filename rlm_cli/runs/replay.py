"""A recorded run as the live trace saw it: the events rebuilt from a trajectory, in order.

The trajectory keeps only finished things: a `cell` record is written when the cell ends, after
the sub-calls it made. The live trace also needs to know when a cell started (to print its code
before its sub-calls) and when each sub-call started (to count them), so `events()` puts a
`CellStart` before the first record of each cell and a `SubcallStart` before each sub-call.
Handing the result to `ConsoleTrace` replays the run with no model call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rlm_cli.events import Cell, CellStart, Event, Subcall, SubcallStart, from_record
from rlm_cli.runs.records import LoopKey, loop_key


def events(records: list[dict[str, Any]]) -> Iterator[Event]:
    """The events of a run, with the start events the trajectory does not store put back.

    Records this version cannot read (an unknown type, a missing field) are passed over.
    """
    parsed = [_event(r) for r in records]
    parent = _parent_cells(records, parsed)
    started: set[int] = set()
    for i, event in enumerate(parsed):
        if event is None:
            continue
        cell = i if isinstance(event, Cell) else parent.get(i)
        if cell is not None and cell not in started:
            started.add(cell)
            c = parsed[cell]
            assert isinstance(c, Cell)
            yield CellStart(c.cell_id, c.iteration, c.code, c.depth)
        if isinstance(event, Subcall):
            yield SubcallStart(event.id, event.cell_id, event.depth, event.model, event.prompt_chars)
        yield event


def _event(record: dict[str, Any]) -> Event | None:
    try:
        return from_record(record)
    except (ValueError, TypeError):
        return None


def _parent_cells(records: list[dict[str, Any]], parsed: list[Event | None]) -> dict[int, int]:
    """For each sub-call, the position of the cell that made it: the next cell of the same loop
    with its cell id (cell ids restart in every sub-RLM, so "next" tells them apart)."""
    upcoming: dict[tuple[LoopKey, int], int] = {}
    parent: dict[int, int] = {}
    for i in range(len(parsed) - 1, -1, -1):
        event = parsed[i]
        if isinstance(event, Cell):
            upcoming[(loop_key(records[i]), event.cell_id)] = i
        elif isinstance(event, Subcall) and event.cell_id is not None:
            found = upcoming.get((loop_key(records[i]), event.cell_id))
            if found is not None:
                parent[i] = found
    return parent
