"""The task type every family produces, and the size notation of `--sizes`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_cli.errors import UsageError

INPUT_FILE = "input.txt"  # the one file of a generated text task


@dataclass(frozen=True)
class Task:
    """One question with its gold answer and the rule that scores it.

    The input is either generated text (`files`, path -> text, written to disk when a method
    needs a path) or a `source` already on disk (a `--tasks` file names one).
    """

    id: str
    family: str
    size: int  # the size asked for, in characters (what the report groups by)
    seed: int
    question: str
    gold: Any  # str, list of str, list of pairs, int, or {"items": [...], "universe": [...]}
    rule: str  # a name in scoring.RULES
    files: Mapping[str, str] | None = None
    source: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)  # e.g. the question's kind

    @property
    def chars(self) -> int:
        """The input's actual size in characters (a file source: its size on disk, in bytes)."""
        if self.files is not None:
            return sum(len(text) for text in self.files.values())
        assert self.source is not None
        path = Path(self.source)
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and ".git" not in p.parts)
        return path.stat().st_size if path.exists() else 0

    def write_input(self, directory: Path) -> str:
        """A path a method can load: the source, or the generated files written under `directory`."""
        if self.files is None:
            assert self.source is not None
            return self.source
        root = directory / self.id
        for rel, text in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return str(root / INPUT_FILE) if list(self.files) == [INPUT_FILE] else str(root)

    def describe(self) -> dict[str, Any]:
        """What a results file records about the task (not the input's text)."""
        return {
            "id": self.id, "family": self.family, "size": self.size, "chars": self.chars, "seed": self.seed,
            "question": self.question, "gold": self.gold, "rule": self.rule, "meta": dict(self.meta),
        }


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_sizes(text: str) -> tuple[int, ...]:
    """`4k,64k,2M` -> (4000, 64000, 2000000): decimal units, as the report prints them."""
    sizes: list[int] = []
    for part in text.split(","):
        match = _SIZE.match(part)
        if not match:
            raise UsageError(f"--sizes: {part.strip()!r} is not a size such as 4k, 64k or 2M")
        value = float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
        if value < 1_000:
            raise UsageError(f"--sizes: {part.strip()!r} is too small (at least 1k characters)")
        sizes.append(int(value))
    return tuple(sizes)


def size_label(chars: int) -> str:
    """4000 -> 4k, 2000000 -> 2M (the inverse of parse_sizes for round sizes)."""
    if chars >= 1_000_000 and chars % 100_000 == 0:
        return f"{chars / 1_000_000:g}M"
    if chars >= 1_000:
        return f"{chars / 1_000:g}k"
    return str(chars)
