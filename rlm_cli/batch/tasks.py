"""The task file of `rlm batch`: one JSON object a line, each one `rlm ask`.

    {"id": "svc-a", "source": "./services/a", "question": "Where are retries configured?"}
    {"id": "q2", "sources": ["notes.txt", "https://host/x.git"], "question": "...", "max_iterations": 10}

A line that is not such an object (bad JSON, an unknown key, a wrong type, a repeated id) is a
`Problem` with its line number; the other lines still become tasks. Relative paths are read
from the task file's directory, so a task file and its data can move together. Keys a task does
not set take the batch's defaults (`rlm batch --model ... --max-iterations ...`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from rlm_cli.api import AskRequest, Inputs, Limits, ModelFlags
from rlm_cli.errors import InputError
from rlm_cli.sources.git import is_git_url
from rlm_cli.sources.loader import STDIN

_MODEL_KEYS = tuple(f.name for f in fields(ModelFlags))  # model, sub_model, api_base, sub_api_base
# Per-task limits: (whole number?, least value, must be above it?). Sub-call concurrency is the
# batch's, shared by every task, so a task cannot set it.
_LIMIT_RULES = {
    "max_iterations": (True, 1, False),
    "max_depth": (True, 1, False),
    "max_subcalls": (True, 0, False),
    "max_cost": (False, 0, False),
    "timeout": (False, 0, True),
    "cell_timeout": (False, 0, True),
}
_INPUT_KEYS = ("include", "exclude", "no_gitignore", "max_file_size")
KNOWN_KEYS = ("id", "source", "sources", "question", *_MODEL_KEYS, *_LIMIT_RULES, *_INPUT_KEYS)


@dataclass(frozen=True)
class Task:
    """One line of the task file, made into the request it stands for."""

    id: str
    line: int
    request: AskRequest


@dataclass(frozen=True)
class Problem:
    """A line that is not a task, and why. Reported, never run, never written to the results."""

    line: int
    message: str

    def text(self, name: str) -> str:
        return f"{name}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Defaults:
    """What a task does not say: the batch's own options."""

    models: ModelFlags = ModelFlags()
    limits: Limits = Limits()
    inputs: Inputs = Inputs(())


def read_tasks(path: Path, defaults: Defaults = Defaults()) -> tuple[list[Task], list[Problem]]:
    """Every task of the file in order, and every line that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"task file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"task file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    tasks: list[Task] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"not JSON ({exc.msg}, column {exc.colno})"))
            continue
        try:
            task_id = _task_id(data, number)
            if task_id in seen:
                raise ValueError(f"id {task_id!r} is used by an earlier line")
            tasks.append(Task(task_id, number, _request(data, path.parent, defaults)))
            seen.add(task_id)
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))
    return tasks, problems


def _task_id(data: Any, number: int) -> str:
    """The task's id: its own, or its line number; ids name results, so resuming can find them."""
    if not isinstance(data, dict) or "id" not in data:
        return f"line-{number}"
    value = data["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise ValueError("id must be a non-empty string or a number")
    return str(value)


def _request(data: Any, base: Path, defaults: Defaults) -> AskRequest:
    if not isinstance(data, dict):
        raise ValueError(f"a task is a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KEYS)}")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    return AskRequest(
        inputs=_inputs(data, base, defaults.inputs),
        question=question,
        models=replace(defaults.models, **_typed(data, _MODEL_KEYS, str)),
        limits=_limits(data, defaults.limits),
    )


def _inputs(data: dict[str, Any], base: Path, defaults: Inputs) -> Inputs:
    if ("source" in data) == ("sources" in data):
        raise ValueError("give exactly one of source (a string) or sources (a list of strings)")
    named = [data["source"]] if "source" in data else data["sources"]
    if not isinstance(named, list) or not named or not all(isinstance(s, str) and s for s in named):
        raise ValueError("source must be a non-empty string, sources a non-empty list of them")
    if STDIN in named:
        raise ValueError("a task cannot read stdin ('-'); name a file")
    given: dict[str, Any] = {key: _strings(data, key) for key in ("include", "exclude") if key in data}
    if "no_gitignore" in data:
        given["use_gitignore"] = not _typed(data, ("no_gitignore",), bool)["no_gitignore"]
    given.update(_typed(data, ("max_file_size",), str))
    return replace(defaults, sources=tuple(_resolved(s, base) for s in named), **given)


def _resolved(source: str, base: Path) -> str:
    """A relative path is relative to the task file; URLs and absolute paths stay as they are."""
    if is_git_url(source) or "://" in source:
        return source
    path = Path(source).expanduser()
    return str(path if path.is_absolute() else base / path)


def _limits(data: dict[str, Any], defaults: Limits) -> Limits:
    given: dict[str, Any] = {}
    for key, (whole, least, above) in _LIMIT_RULES.items():
        if key not in data:
            continue
        value = data[key]
        number = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not number or value < least or (above and value == least):
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{key} must be {kind} {'above' if above else 'of at least'} {least}")
        given[key] = value
    return replace(defaults, **given)


def _typed(data: Mapping[str, Any], keys: tuple[str, ...], kind: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        if key in data:
            if not isinstance(data[key], kind) or (kind is str and not data[key]):
                raise ValueError(f"{key} must be a {'non-empty string' if kind is str else kind.__name__}")
            out[key] = data[key]
    return out


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a string or a list of strings")
    return tuple(value)
