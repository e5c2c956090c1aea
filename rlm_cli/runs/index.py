"""A small index of run summaries, kept next to the trajectories as `index.json`.

Summarising a trajectory means opening and parsing it (about a millisecond for a run with a few
hundred sub-calls), so listing 1,000 runs took about a second; with the index it is a `stat` per
file (benchmarks/bench_runs.py). An entry is trusted only while the file's size and mtime are
unchanged, so a run still being written, or a file replaced, is read again. The index is a
cache: unreadable, from another version, or not writable, it is rebuilt or skipped, never an error.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlm_cli.runs.summary import RunSummary, summarise_file

INDEX_NAME = "index.json"
VERSION = 2  # 2: summaries say which run a run follows up or resumes


class RunIndex:
    def __init__(self, directory: Path) -> None:
        self.path = directory / INDEX_NAME
        self._entries = self._load()
        self._changed = False

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("runs"), dict):
            return {}
        return data["runs"]

    def summaries(self, paths: Iterable[Path]) -> list[RunSummary]:
        """The summary of each file, from the index where it is current; saves what changed."""
        rows = []
        seen = set()
        for path in paths:
            seen.add(path.name)
            rows.append(self._summary(path))
        if set(self._entries) - seen:  # pruned or deleted runs
            self._entries = {name: e for name, e in self._entries.items() if name in seen}
            self._changed = True
        if self._changed:
            self._save()
        return rows

    def _summary(self, path: Path) -> RunSummary:
        try:
            st = path.stat()
        except OSError:
            return summarise_file(path)
        key = [st.st_size, st.st_mtime_ns]
        entry = self._entries.get(path.name)
        if entry is not None and entry.get("key") == key:
            try:
                return RunSummary(**entry["summary"])
            except TypeError:  # written by another version
                pass
        summary = summarise_file(path, st.st_mtime)
        self._entries[path.name] = {"key": key, "summary": summary.as_json()}
        self._changed = True
        return summary

    def _save(self) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".index-", suffix=".tmp")
        except OSError:
            return  # a read-only directory: list without an index
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": VERSION, "runs": self._entries}, f, ensure_ascii=False)
            os.replace(tmp, self.path)  # atomic: a concurrent reader sees the old or the new index
        except OSError:
            Path(tmp).unlink(missing_ok=True)
