"""Task generators, one module per family, and `generate`, which makes the tasks of a bench.

Every generator is a pure function of (size, seed, index): the same arguments give the same
task, input text and gold answer, on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from rlm_cli.bench.tasks.base import Task, parse_sizes, size_label
from rlm_cli.bench.tasks.code import DEFAULT_PACKAGE, code_task
from rlm_cli.bench.tasks.needles import multi_needle, niah, niah_paraphrase
from rlm_cli.bench.tasks.oolong import oolong, oolong_pairs
from rlm_cli.errors import UsageError

__all__ = ["FAMILIES", "DEFAULT_SIZES", "Task", "generate", "parse_sizes", "size_label"]

Generator = Callable[[int, int, int], Task]

FAMILIES: dict[str, Generator] = {
    "niah": niah,
    "niah-paraphrase": niah_paraphrase,
    "multi-needle": multi_needle,
    "oolong": oolong,
    "oolong-pairs": oolong_pairs,
    "code": code_task,
}
DEFAULT_SIZES = (4_000, 16_000, 64_000, 256_000, 2_000_000)


def generate(
    families: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int],
    per_cell: int,
    code_package: str = DEFAULT_PACKAGE,
) -> list[Task]:
    """`per_cell` tasks for every family x size x seed, in that order."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UsageError(f"--family: unknown {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    if per_cell < 1:
        raise UsageError("--limit must be at least 1")
    tasks: list[Task] = []
    for family in families:
        make = partial(code_task, package=code_package) if family == "code" else FAMILIES[family]
        for size in sizes:
            for seed in seeds:
                tasks += [make(size, seed, index) for index in range(per_cell)]
    return tasks
