"""The package's shape, checked from its source: no import circles (lazy imports included), Typer
only in the CLI, Rich only in the renderers, exit codes only in the CLI's app module."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx

import rlm_cli

PACKAGE = Path(rlm_cli.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, lazily inside functions too, but not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = [node for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    skipped = {id(child) for node in checking for child in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)  # its __init__ runs
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules, if any
    return found


def sources() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_no_import_circles() -> None:
    modules = sources()
    graph = networkx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for imported in imports_of(path):
            # A package's __init__ re-exporting its own modules is not a circle of the design.
            if imported in modules and imported != name and not imported.startswith(name + "."):
                graph.add_edge(name, imported)
    assert list(networkx.simple_cycles(graph)) == []


def test_typer_only_in_the_cli_and_rich_only_in_the_renderers() -> None:
    for name, path in sources().items():
        imports = {i.split(".")[0] for i in imports_of(path)}
        if "typer" in imports:
            assert name.startswith("rlm_cli.cli"), name
        if "rich" in imports:
            assert name.startswith("rlm_cli.trace"), name


def test_only_the_cli_app_picks_exit_codes() -> None:
    for name, path in sources().items():
        text = path.read_text(encoding="utf-8")
        if name != "rlm_cli.cli.app":
            assert "typer.Exit(" not in text and "sys.exit(" not in text, name
