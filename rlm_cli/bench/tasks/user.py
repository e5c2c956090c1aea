"""`--tasks FILE.jsonl`: a team's own tasks, one JSON object a line.

Each line holds `source` (a file or directory; a relative path is taken from the JSONL file's
directory), `question`, `gold` and `rule` (a name in scoring.RULES); `id` and `family` are
optional. Bad lines are usage errors naming the line.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from rlm_cli.bench.scoring import RULES
from rlm_cli.bench.tasks.base import Task
from rlm_cli.errors import InputError, UsageError


def read_tasks(path: Path) -> list[Task]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"--tasks {path}: {exc.strerror or exc}") from exc
    tasks: list[Task] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"--tasks {path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a JSON object")
        missing = [k for k in ("source", "question", "gold", "rule") if k not in data]
        if missing:
            raise UsageError(f"{where}: missing {', '.join(missing)}")
        if data["rule"] not in RULES:
            raise UsageError(f"{where}: unknown rule {data['rule']!r}; known: {', '.join(RULES)}")
        source = Path(str(data["source"])).expanduser()
        if not source.is_absolute():
            source = path.parent / source
        if not source.exists():
            raise InputError(f"{where}: source {source} does not exist")
        task = Task(str(data.get("id") or f"task-{number}"), str(data.get("family") or "tasks"), 0, 0,
                    str(data["question"]), data["gold"], data["rule"], source=str(source))
        tasks.append(replace(task, size=task.chars))  # grouped by the source's size in the report
    if not tasks:
        raise UsageError(f"--tasks {path}: no tasks in the file")
    return tasks
