"""`rlm show RUN --html FILE`: one self-contained HTML page for a recorded run.

The page is the template `viewer.html` (inline CSS and JavaScript, no network) with the run
embedded as one JSON blob. Code cells are highlighted here, with Pygments, so the page needs no
highlighter; everything else (turns, outputs, sub-call timelines, nested sub-RLMs) is built by
the page's script from the blob. Sub-call rows are built only when their list is opened, a
page of rows at a time, so a run with thousands of sub-calls opens at once.

How records become a tree: a turn starts at each `root_response`; a `cell` record (written when
the cell ends) joins the current turn of its loop and adopts the sub-calls it made (same loop,
same cell id) and the turns of the sub-RLMs it started (`records.loop_key`: by `parent` ids
where records carry them, else by depth). Records written by other versions read too: unknown
fields are ignored, `cost` (or the usage's `cost_usd`) and `kind` of a sub-call are used when
present.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from rlm_cli.loop.parsing import prose
from rlm_cli.runs.records import TOP_LOOPS, LoopKey, Trajectory, loop_key
from rlm_cli.runs.summary import summarise

STYLE = "friendly"
MAX_TEXT = 200_000  # characters of one answer or output embedded in the page


@dataclass
class _Tree:
    """What one pass over the records builds."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    subcalls: list[dict[str, Any]] = field(default_factory=list)
    current: dict[LoopKey, dict[str, Any]] = field(default_factory=dict)  # the open turn of each loop
    waiting_turns: dict[LoopKey, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    waiting_subcalls: dict[tuple[LoopKey, Any], list[int]] = field(default_factory=lambda: defaultdict(list))


def view_data(trajectory: Trajectory) -> dict[str, Any]:
    """The JSON the page renders: the run's header and totals, its turns, and every sub-call."""
    summary = summarise(trajectory)
    start = trajectory.first("run_start") or {}
    system = next((r for r in trajectory.records if r["type"] == "message" and r.get("role") == "system" and not r.get("depth")), None)
    tree = _Tree()
    lexer, formatter = PythonLexer(), HtmlFormatter(nowrap=True)
    for record in trajectory.records:
        kind = record["type"]
        if kind == "root_response":
            _turn(tree, record)
        elif kind == "cell":
            _cell(tree, record, lexer, formatter)
        elif kind == "subcall":
            tree.subcalls.append(_subcall(record))
            tree.waiting_subcalls[(loop_key(record), record.get("cell_id"))].append(len(tree.subcalls) - 1)
    unfinished = {
        "subcalls": [i for ids in tree.waiting_subcalls.values() for i in ids],
        "children": [{"id": key[1] if key[0] == "parent" else None, "turns": t} for key, t in tree.waiting_turns.items() if t],
    }
    return {
        "run": {
            **summary.as_json(),
            "answer": _cap(summary.answer),
            "version": start.get("version"),
            "limits": start.get("limits") or {},
            "context": start.get("context") or {},
        },
        "system": _cap(system.get("content")) if system else None,
        "notices": [r.get("message", "") for r in trajectory.records if r["type"] == "notice"],
        "turns": tree.turns,
        "subcalls": tree.subcalls,
        "unfinished": unfinished,
    }


def _turn(tree: _Tree, record: dict[str, Any]) -> dict[str, Any]:
    usage = record.get("usage") or {}
    duration = float(record.get("duration_s") or 0)
    key = loop_key(record)
    turn = {
        "iteration": record.get("iteration"),
        "depth": int(record.get("depth") or 0),
        "start": round(float(record.get("t") or 0) - duration, 3),
        "duration": round(duration, 3),
        "in": usage.get("input_tokens") or 0,
        "out": usage.get("output_tokens") or 0,
        "cost": usage.get("cost_usd"),
        "faults": list(record.get("faults") or []),
        "prose": prose(str(record.get("text") or "")),
        "cells": [],
    }
    (tree.turns if key in TOP_LOOPS else tree.waiting_turns[key]).append(turn)
    tree.current[key] = turn
    return turn


def _cell(tree: _Tree, record: dict[str, Any], lexer: PythonLexer, formatter: HtmlFormatter) -> None:
    duration = float(record.get("duration_s") or 0)
    code = str(record.get("code") or "")
    key = loop_key(record)
    # recorded as they finish; shown as they started (ids are given at the start)
    subcalls = sorted(tree.waiting_subcalls.pop((key, record.get("cell_id")), []), key=lambda i: tree.subcalls[i]["id"] or 0)
    if "parent" in record:  # each sub-RLM this cell started, by the id of its own sub-call
        ids = [tree.subcalls[i]["id"] for i in subcalls if tree.subcalls[i]["kind"] == "rlm"]
        children = [{"id": i, "turns": tree.waiting_turns.pop(("parent", i))} for i in ids if ("parent", i) in tree.waiting_turns]
    else:  # older records: whatever ran one level deeper meanwhile
        turns = tree.waiting_turns.pop(("depth", int(record.get("depth") or 0) + 1), [])
        children = [{"id": None, "turns": turns}] if turns else []
    cell = {
        "id": record.get("cell_id"),
        "start": round(float(record.get("t") or 0) - duration, 3),
        "duration": round(duration, 3),
        "code": highlight(code, lexer, formatter),
        "output": _cap(str(record.get("output") or "")),
        "output_chars": record.get("output_chars"),
        "truncated": bool(record.get("truncated")),
        "error": record.get("error"),
        "final": bool(record.get("final")),
        "subcalls": subcalls,
        "children": children,
    }
    turn = tree.current.get(key)
    if turn is None:  # a cell with no reply recorded before it (a damaged file)
        turn = _turn(tree, {**record, "t": cell["start"], "duration_s": 0, "usage": {}, "text": ""})
    turn["cells"].append(cell)


def _subcall(record: dict[str, Any]) -> dict[str, Any]:
    usage = record.get("usage") or {}
    duration = float(record.get("duration_s") or 0)
    cost = record.get("cost", usage.get("cost_usd"))
    return {
        "id": record.get("id"),
        "kind": record.get("kind") or "llm",
        "model": record.get("model") or "",
        "depth": record.get("depth"),
        "start": round(float(record.get("t") or 0) - duration, 3),
        "duration": round(duration, 3),
        "in": usage.get("input_tokens") or 0,
        "out": usage.get("output_tokens") or 0,
        "cost": cost,
        "cached": bool(record.get("cached")),
        "error": record.get("error"),
        "prompt_chars": record.get("prompt_chars") or 0,
        "response_chars": record.get("response_chars") or 0,
        "prompt": record.get("prompt_preview") or "",
        "response": record.get("response_preview") or "",
    }


def _cap(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… ({len(text) - MAX_TEXT:,} more characters in the trajectory)"


def render(trajectory: Trajectory) -> str:
    """The whole page as one string."""
    template = resources.files("rlm_cli.runs").joinpath("viewer.html").read_text(encoding="utf-8")
    data = json.dumps(view_data(trajectory), ensure_ascii=False, separators=(",", ":"))
    # Inside <script> only `</script` and `<!--` are dangerous; no `<` at all is simplest.
    data = data.replace("<", "\\u003c")
    title = summarise(trajectory).question[:80] or trajectory.id
    pieces = {
        "TITLE": html.escape(f"rlm · {title}"),
        "CODE_STYLE": HtmlFormatter(style=STYLE).get_style_defs(".code"),
        "DATA": data,
    }
    # One pass, so a question that contains a marker is not filled in itself.
    return re.sub(r"\{\{(TITLE|CODE_STYLE|DATA)\}\}", lambda m: pieces[m.group(1)], template)
