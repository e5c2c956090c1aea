"""Python accuracy of the code graph, checked against Python's own ``ast`` module.

Symbols (functions incl. async, classes, methods) must match ``ast`` exactly in name,
qualname, kind, the line of the name and the start line (first decorator); end lines may only
differ by trailing comment lines, which tree-sitter keeps inside a body and ``ast`` does not.
Calls must match an ``ast`` walk that charges each call to the innermost enclosing function,
decorators, defaults and annotations to the scope around the ``def``, and top-level or
class-body calls to ``<module>`` -- the convention ``CodeIndex.callers`` documents.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import rich
import typer

from rlm_cli.codegraph import MODULE_SYMBOL, build_code_index, parse_file

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)

# (qualname, kind, line, start_line, end_line)
SymbolTuple = tuple[str, str, int, int, int]


def ast_symbols(text: str) -> list[SymbolTuple]:
    found: list[SymbolTuple] = []

    def visit(node: ast.AST, prefix: str, parent_kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (*FUNCTIONS, ast.ClassDef)):
                is_class = isinstance(child, ast.ClassDef)
                kind = "class" if is_class else "method" if parent_kind == "class" else "function"
                qualname = prefix + child.name
                start = min([d.lineno for d in child.decorator_list] + [child.lineno])
                end = child.end_lineno or child.lineno
                found.append((qualname, kind, child.lineno, start, end))
                visit(child, qualname + ".", "class" if is_class else "function")
            else:
                visit(child, prefix, parent_kind)

    visit(ast.parse(text), "", "")
    return found


def ast_calls(text: str) -> list[tuple[str, str]]:
    """(called name, qualname of the innermost enclosing function or <module>) of each call."""
    found: list[tuple[str, str]] = []

    def handle(node: ast.AST, scope: str, prefix: str) -> None:
        if isinstance(node, FUNCTIONS):
            qualname = prefix + node.name
            args = node.args
            params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            params += [p for p in (args.vararg, args.kwarg) if p is not None]
            outer: list[ast.AST] = [*node.decorator_list, *args.defaults]
            outer += [d for d in args.kw_defaults if d is not None]
            outer += [p.annotation for p in params if p.annotation is not None]
            outer += [node.returns] if node.returns is not None else []
            for part in outer:  # evaluated where the def runs, not inside it
                handle(part, scope, prefix)
            for statement in node.body:
                handle(statement, qualname, qualname + ".")
        elif isinstance(node, ast.ClassDef):
            for part in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                handle(part, scope, prefix)
            for statement in node.body:  # a class body is not a function scope
                handle(statement, scope, prefix + node.name + ".")
        else:
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name):
                    found.append((node.func.id, scope))
                elif isinstance(node.func, ast.Attribute):
                    found.append((node.func.attr, scope))
            for child in ast.iter_child_nodes(node):
                handle(child, scope, prefix)

    handle(ast.parse(text), MODULE_SYMBOL, "")
    return found


def graph_symbols(path: str, text: str) -> list[SymbolTuple]:
    entry = parse_file(path, text)
    return [(row[1], row[2], row[3], row[4], row[5]) for row in entry.symbols]


def graph_calls(path: str, text: str) -> list[tuple[str, str]]:
    entry = parse_file(path, text)
    qualnames = [row[1] for row in entry.symbols]
    return [
        (name, qualnames[caller] if caller >= 0 else MODULE_SYMBOL)
        for name, _line, _column, caller in entry.calls
    ]


def only_comments_between(text: str, first: int, last: int) -> bool:
    """Lines first..last (1-based, inclusive) are blank or comments."""
    lines = text.split("\n")[first - 1 : last]
    return all(not line.strip() or line.strip().startswith("#") for line in lines)


def compare_symbols(path: str, text: str) -> tuple[int, list[str]]:
    """Number of ast symbols, and the differences found (empty when all match)."""
    expected = ast_symbols(text)
    got = graph_symbols(path, text)
    problems: list[str] = []
    expected_heads = Counter(s[:4] for s in expected)
    got_heads = Counter(s[:4] for s in got)
    if expected_heads != got_heads:
        missing = list((expected_heads - got_heads).elements())[:5]
        extra = list((got_heads - expected_heads).elements())[:5]
        problems.append(f"{path}: missing {missing} extra {extra}")
        return len(expected), problems
    ends = {s[:4]: s[4] for s in got}
    for symbol in expected:
        end = ends[symbol[:4]]
        if end != symbol[4] and not (
            end > symbol[4] and only_comments_between(text, symbol[4] + 1, end)
        ):
            problems.append(f"{path}: {symbol[0]} ends at {end}, ast says {symbol[4]}")
    return len(expected), problems


def package_files(package_dir: Path) -> dict[str, str]:
    files = {}
    for file in sorted(package_dir.rglob("*.py")):
        files[file.relative_to(package_dir).as_posix()] = file.read_text(encoding="utf-8")
    return files


# -- a generated repository ------------------------------------------------------------------

TRICKY = '''\
import functools
from . import helpers


def plain(a, b=helpers.default()):
    return helpers.compute(a) + b


async def fetch(url: str = make_url()) -> bytes:
    data = await client.get(url)
    return data


@functools.lru_cache(
    maxsize=None,
)
# a comment between the decorator and the def
def cached(x):
    return expensive(x)


class Outer(Base, metaclass=make_meta()):
    """Docstring."""

    attribute = compute_default()
    handler = lambda self: self.run()

    @property
    @other.decorator(arg())
    def value(self):
        return self._value

    async def start(self):
        await self.prepare()

    class Inner:
        def method(self):
            def helper():
                return deep_call()
            return helper()

        class Innermost:
            @staticmethod
            def leaf():
                leaf_call()

    if TYPE_CHECKING:
        def conditional(self): ...
    else:
        def conditional(self):
            return fallback()

    try:
        def in_try(self):
            return tried()
    except ImportError:
        pass


def outer_function():
    class LocalClass:
        def local_method(self):
            return local_call()
        value = class_body_call()
    def local_function():
        return (paren_call)(1)
    return [item.transform() for item in local_function()]


if __name__ == "__main__":
    def main():
        plain(1)
    main()

with context() as manager:
    def in_with():
        manager.use()

for i in range(3):
    def in_loop():
        pass

def one_liner(): return quick()
class Empty: pass
callback = lambda: not_a_definition()
result = f"{formatted()}"
'''


def generated_module(rng: random.Random, names: list[str]) -> str:
    """Random nesting of classes, functions, blocks, decorators and calls."""
    lines: list[str] = ["import os", ""]
    counter = iter(range(10**6))

    def call() -> str:
        name = rng.choice(names)
        return rng.choice([f"{name}()", f"self.{name}(1)", f"obj.attr.{name}(x=2)", f"{name}(inner())"])

    def emit_block(indent: int, depth: int, in_class: bool) -> None:
        pad = "    " * indent
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            if depth < 4 and choice < 0.3:
                for _ in range(rng.randint(0, 2)):
                    lines.append(f"{pad}@{rng.choice(['deco', 'mod.deco', 'deco(' + call() + ')'])}")
                prefix = rng.choice(["", "", "async "])
                args = "self, a=" + call() if in_class else "a, b=" + call()
                lines.append(f"{pad}{prefix}def f{next(counter)}({args}):")
                emit_block(indent + 1, depth + 1, False)
            elif depth < 4 and choice < 0.45:
                if rng.random() < 0.3:
                    lines.append(f"{pad}@dataclass")
                lines.append(f"{pad}class C{next(counter)}(Base):")
                emit_block(indent + 1, depth + 1, True)
            elif depth < 4 and choice < 0.6:
                block = rng.choice(["if x:", "try:", "with ctx():", "for y in items:", "while go:"])
                lines.append(f"{pad}{block}")
                emit_block(indent + 1, depth + 1, in_class)
                if block == "try:":
                    lines.append(f"{pad}except Exception:")
                    emit_block(indent + 1, depth + 1, in_class)
            elif choice < 0.7:
                lines.append(f"{pad}handler = lambda v: {call()}")
            elif choice < 0.8:
                lines.append(f"{pad}# comment {call()}")
            else:
                lines.append(f"{pad}value = {call()}")
        lines.append(f"{pad}pass")

    emit_block(0, 0, False)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def generated_repo() -> dict[str, str]:
    rng = random.Random(20240521)
    names = ["alpha", "beta", "gamma", "delta", "save", "load"]
    files = {"pkg/__init__.py": "", "pkg/tricky.py": TRICKY, "pkg/helpers.py": "def compute(x):\n    return x\n"}
    for i in range(40):
        files[f"pkg/gen/m{i}.py"] = generated_module(rng, names)
    for text in files.values():
        ast.parse(text)  # the generator writes valid Python
    return files


def test_generated_repository_symbols_match_ast(generated_repo: dict[str, str]) -> None:
    total = 0
    problems: list[str] = []
    for path, text in generated_repo.items():
        count, found = compare_symbols(path, text)
        total += count
        problems += found
    assert problems == []
    assert total > 500


def test_tricky_module_symbols(generated_repo: dict[str, str]) -> None:
    symbols = {s[0]: s for s in graph_symbols("pkg/tricky.py", TRICKY)}
    assert symbols["cached"] == ("cached", "function", 18, 14, 19)
    assert symbols["fetch"][1] == "function"
    assert symbols["Outer.value"] == ("Outer.value", "method", 30, 28, 31)
    assert symbols["Outer.Inner.method.helper"][1] == "function"
    assert symbols["Outer.Inner.Innermost.leaf"][1] == "method"
    assert symbols["Outer.in_try"][1] == "method"
    assert symbols["outer_function.LocalClass.local_method"][1] == "method"
    assert "callback" not in symbols and "Outer.handler" not in symbols


def test_generated_repository_calls_match_ast(generated_repo: dict[str, str]) -> None:
    for path, text in generated_repo.items():
        assert Counter(graph_calls(path, text)) == Counter(ast_calls(text)), path


def test_callers_match_ast(generated_repo: dict[str, str]) -> None:
    index = build_code_index(generated_repo, use_cache=False, processes=1)
    for name in ["alpha", "save", "compute", "deep_call", "class_body_call", "paren_call", "run"]:
        expected = {
            (path, scope)
            for path, text in generated_repo.items()
            for called, scope in ast_calls(text)
            if called == name
        }
        got = {(s.path, s.qualname) for s in index.callers(name)}
        assert got == expected, name
        assert len(index.callers(name)) == len(expected)  # each caller once
    module_callers = [s for s in index.callers("main") if s.qualname == MODULE_SYMBOL]
    assert [(s.kind, s.path, s.start_line) for s in module_callers] == [("module", "pkg/tricky.py", 1)]


@pytest.mark.parametrize("package", [rich, typer], ids=["rich", "typer"])
def test_installed_package_matches_ast(package: ModuleType) -> None:
    assert package.__file__ is not None
    package_dir = Path(package.__file__).parent
    files = package_files(package_dir)
    total = 0
    problems: list[str] = []
    calls_by_path = {path: ast_calls(text) for path, text in files.items()}
    for path, text in files.items():
        count, found = compare_symbols(path, text)
        total += count
        problems += found
        assert Counter(graph_calls(path, text)) == Counter(calls_by_path[path]), path
    assert problems == []
    assert total > 300 and sum(map(len, calls_by_path.values())) > 1000
    # callers() over the whole package, for the most called names
    index = build_code_index(files, use_cache=False, processes=1)
    by_name = Counter(name for calls in calls_by_path.values() for name, _scope in calls)
    for name, _count in by_name.most_common(15):
        expected = {
            (path, scope)
            for path, calls in calls_by_path.items()
            for called, scope in calls
            if called == name
        }
        assert {(s.path, s.qualname) for s in index.callers(name)} == expected, name


def test_source_of_symbols(generated_repo: dict[str, str]) -> None:
    index = build_code_index(generated_repo, use_cache=False, processes=1)
    assert index.source("cached") == (
        "@functools.lru_cache(\n    maxsize=None,\n)\n"
        "# a comment between the decorator and the def\n"
        "def cached(x):\n    return expensive(x)\n"
    )
    leaf = index.symbols("Outer.Inner.Innermost.leaf")[0]
    assert index.source(leaf) == (
        "            @staticmethod\n            def leaf():\n                leaf_call()\n"
    )
    with pytest.raises(ValueError, match="names 2 symbols"):
        index.source("Outer.conditional")
    with pytest.raises(KeyError):
        index.source("no_such_symbol")
