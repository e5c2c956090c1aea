"""The `code` family: questions about a real Python package, with gold answers from `ast`.

The gold never comes from rlm's own code graph: this module walks the syntax trees itself.
A task of `size` characters holds a seeded choice of the package's files adding up to about
that size (all of them when the package is smaller). Three kinds of question, in turn:
find a definition from its docstring (`exact` on the name), name the callers of a function
(`set_f1` over names), and say where a name is defined (`exact` on the file's path).
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rlm_cli.bench.tasks.base import Task, size_label
from rlm_cli.errors import UsageError

DEFAULT_PACKAGE = "rich"
# Names a call `x.name()` shares with builtin types: their callers are not the package's own.
_COMMON = frozenset(dir(builtins)) | frozenset(dir(dict)) | frozenset(dir(list)) | frozenset(dir(str)) | frozenset(dir(set))


@dataclass(frozen=True)
class Definition:
    name: str
    qualname: str
    kind: str  # function | method | class
    path: str
    doc: str  # the docstring's first line, or ""


@dataclass(frozen=True)
class Facts:
    definitions: tuple[Definition, ...]
    callers: dict[str, frozenset[str]]  # called name -> qualnames of the functions calling it


def package_dir(package: str) -> Path:
    """A directory of Python files: the path given, or where an importable package lives."""
    path = Path(package)
    if path.is_dir():
        return path.resolve()
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"--code-package: {package!r} is neither a directory nor an installed package")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


@lru_cache(maxsize=4)
def package_files(package: str) -> tuple[tuple[str, str], ...]:
    """(path relative to the package's parent, text) of every parseable .py file, sorted."""
    root = package_dir(package)
    out: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            ast.parse(text)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        out.append((path.relative_to(root.parent).as_posix(), text))
    if not out:
        raise UsageError(f"--code-package: no Python files under {root}")
    return tuple(out)


class _Walker(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.stack: list[tuple[str, bool]] = []  # (name, is a class)
        self.definitions: list[Definition] = []
        self.calls: list[tuple[str, str]] = []  # (called name, caller qualname)

    def _define(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, kind: str) -> None:
        qualname = ".".join([n for n, _ in self.stack] + [node.name])
        doc = (ast.get_docstring(node) or "").strip().split("\n")[0].strip()
        self.definitions.append(Definition(node.name, qualname, kind, self.path, doc))
        self.stack.append((node.name, kind == "class"))
        self.generic_visit(node)
        self.stack.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._define(node, "class")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._define(node, "method" if self.stack and self.stack[-1][1] else "function")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._define(node, "method" if self.stack and self.stack[-1][1] else "function")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        enclosing = [i for i, (_, is_class) in enumerate(self.stack) if not is_class]
        if name and enclosing:
            self.calls.append((name, ".".join(n for n, _ in self.stack[: enclosing[-1] + 1])))
        self.generic_visit(node)


def facts(files: dict[str, str]) -> Facts:
    """Definitions and calls of the files, from their syntax trees."""
    definitions: list[Definition] = []
    callers: dict[str, set[str]] = defaultdict(set)
    for path, text in files.items():
        walker = _Walker(path)
        walker.visit(ast.parse(text))
        definitions += walker.definitions
        for name, caller in walker.calls:
            callers[name].add(caller)
    return Facts(tuple(definitions), {k: frozenset(v) for k, v in callers.items()})


def select_files(package: str, size: int, seed: int) -> dict[str, str]:
    """A seeded choice of the package's files of about `size` characters (at least one file)."""
    files = list(package_files(package))
    random.Random(f"code-files:{package}:{size}:{seed}").shuffle(files)
    chosen: dict[str, str] = {}
    total = 0
    for path, text in files:
        if total >= size * 0.8:
            break
        if total + len(text) <= size * 1.25:
            chosen[path] = text
            total += len(text)
    if not any("def " in text for text in chosen.values()):
        path, text = min((f for f in files if "def " in f[1]), key=lambda f: len(f[1]))
        chosen[path] = text
    return dict(sorted(chosen.items()))


def code_task(size: int, seed: int, index: int, package: str = DEFAULT_PACKAGE) -> Task:
    files = select_files(package, size, seed)
    found = facts(files)
    by_name: dict[str, list[Definition]] = defaultdict(list)
    for d in found.definitions:
        by_name[d.name].append(d)
    unique = [d for d in found.definitions if len(by_name[d.name]) == 1 and not d.name.startswith("__")]
    rng = random.Random(f"code:{package}:{size}:{seed}:{index}")
    names = sorted({d.name for d in found.definitions})
    docs = Counter(d.doc for d in found.definitions if d.doc)
    described = [d for d in unique if d.kind != "class" and len(d.doc.split()) >= 5 and docs[d.doc] == 1
                 and d.name.lower() not in d.doc.lower()]
    called = [d for d in unique if d.kind != "class" and d.name not in _COMMON and len(d.name) >= 4
              and 2 <= len({q.split(".")[-1] for q in found.callers.get(d.name, ())}) <= 8]
    kinds = [k for k, pool in (("definition", described), ("callers", called), ("where", unique)) if pool]
    if not kinds:
        raise UsageError(f"--code-package: {package!r} has no uniquely named definitions to ask about")
    wanted = ("definition", "callers", "where")[index % 3]
    kind = wanted if wanted in kinds else kinds[index % len(kinds)]
    task_id = f"code-{size_label(size)}-s{seed}-{index}"

    def task(question: str, gold: Any, rule: str, **meta: Any) -> Task:
        return Task(task_id, "code", size, seed, question, gold, rule, files=files,
                    meta={"kind": kind, "package": package, **meta})

    if kind == "definition":
        d = rng.choice(described)
        return task(f'Which function or method in this code does the following: "{d.doc}"? Answer with its name.',
                    d.name, "exact", qualname=d.qualname, path=d.path)
    if kind == "callers":
        d = rng.choice(called)
        items = sorted({q.split(".")[-1] for q in found.callers[d.name]})
        return task(f"Which functions or methods call `{d.name}`? List their names.",
                    {"items": items, "universe": names}, "set_f1", callers=sorted(found.callers[d.name]))
    d = rng.choice(unique)
    return task(f"In which file is `{d.name}` defined? Answer with the file's path.", d.path, "exact", qualname=d.qualname)
