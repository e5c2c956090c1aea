"""The code graph as a ``networkx.MultiDiGraph``, for models that want to walk it.

Nodes: every file (its path, ``type="file"``), every symbol (the ``Symbol`` itself,
``type="symbol"``), and every imported module that is not a repository file
(``"module:<name>"``, ``type="module"``). Edges carry their kind as the key:

- ``defines``  file -> each symbol defined in it
- ``contains`` symbol -> each symbol defined directly inside it
- ``imports``  file -> imported file (or a Go package's files, or the module node);
  attributes ``lines`` and ``modules`` (as written), one edge per file and target
- ``calls``    caller -> each symbol the called name may mean. Calls are resolved by name only,
  so a name defined several times gives an edge to every candidate, each with
  ``ambiguous=True`` and ``candidates=<n>``; ``lines`` lists the call sites. The caller is the
  innermost enclosing function or method, or the file for top-level code. Names with no
  definition in the repository (``print``, library calls) get no edge.
  A name with more than ``MAX_DIRECT_CANDIDATES`` definitions (``__init__``, ``eval``...) would
  multiply the edges of a large repository tenfold (sympy: a million); its calls go instead to
  one node ``"name:<name>"`` (``type="name"``), which has a ``candidate`` edge to each
  definition: the ambiguity stays in the graph, one hop further.

Every edge also carries its kind as the attribute ``kind``, for ``graph.edges(data="kind")``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx

from rlm_cli.codegraph.model import FileIndex, Import, Symbol

#: Kinds a call can resolve to.
CALLABLE_KINDS = frozenset({"function", "method", "class", "macro", "struct"})
#: Above this many candidates, calls of a name go through a ``name:`` node.
MAX_DIRECT_CANDIDATES = 5


def build_graph(
    entries: Mapping[str, FileIndex], symbols_by_path: Mapping[str, list[Symbol]], imports: Iterable[Import]
) -> networkx.MultiDiGraph:
    """The graph of parsed files (`entries`), their `Symbol`s and their resolved `imports`."""
    graph = networkx.MultiDiGraph()
    for path, entry in entries.items():
        graph.add_node(path, type="file", language=entry.language, status=entry.status)
    for path, symbols in symbols_by_path.items():
        rows = entries[path].symbols
        graph.add_nodes_from(symbols, type="symbol")
        for symbol in symbols:
            graph.nodes[symbol]["kind"] = symbol.kind
        graph.add_edges_from((path, symbol, "defines", {"kind": "defines"}) for symbol in symbols)
        graph.add_edges_from(
            (symbols[row[7]], symbol, "contains", {"kind": "contains"})
            for symbol, row in zip(symbols, rows)
            if row[7] >= 0
        )
    _add_imports(graph, entries, imports)
    _add_calls(graph, entries, symbols_by_path)
    return graph


def _add_imports(graph: networkx.MultiDiGraph, entries: Mapping[str, FileIndex], imports: Iterable[Import]) -> None:
    by_directory: dict[str, list[str]] = {}
    for path in entries:
        by_directory.setdefault(path.rpartition("/")[0], []).append(path)
    for record in imports:
        if record.resolved is None:
            target = f"module:{record.module}"
            if target not in graph:
                graph.add_node(target, type="module")
            targets = [target]
        elif record.resolved in entries:
            targets = [record.resolved]
        else:  # a directory (a Go package): its files
            targets = by_directory.get(record.resolved, [])
        for target in targets:
            if graph.has_edge(record.path, target, key="imports"):
                data = graph.edges[record.path, target, "imports"]
                if record.line not in data["lines"]:
                    data["lines"].append(record.line)
                if record.module not in data["modules"]:
                    data["modules"].append(record.module)
            else:
                graph.add_edge(
                    record.path,
                    target,
                    key="imports",
                    kind="imports",
                    lines=[record.line],
                    modules=[record.module],
                )


def _add_calls(
    graph: networkx.MultiDiGraph, entries: Mapping[str, FileIndex], symbols_by_path: Mapping[str, list[Symbol]]
) -> None:
    candidates: dict[str, list[Symbol]] = {}
    for symbols in symbols_by_path.values():
        for symbol in symbols:
            if symbol.kind in CALLABLE_KINDS:
                candidates.setdefault(symbol.name, []).append(symbol)
    hubs: set[str] = set()
    for path, entry in entries.items():
        symbols = symbols_by_path.get(path, [])
        sites: dict[tuple[int, str], list[int]] = {}
        for name, line, _column, caller in entry.calls:
            if name in candidates:
                sites.setdefault((caller, name), []).append(line)
        for (caller, name), lines in sites.items():
            source: Symbol | str = symbols[caller] if caller >= 0 else path
            targets = candidates[name]
            count = len(targets)
            if count > MAX_DIRECT_CANDIDATES:
                hub = f"name:{name}"
                if hub not in hubs:
                    hubs.add(hub)
                    graph.add_node(hub, type="name", candidates=count)
                    graph.add_edges_from(
                        (hub, target, "candidate", {"kind": "candidate"}) for target in targets
                    )
                graph.add_edge(
                    source, hub, key="calls", kind="calls", lines=lines, ambiguous=True,
                    candidates=count,
                )
                continue
            ambiguous = count > 1
            graph.add_edges_from(
                (
                    source,
                    target,
                    "calls",
                    {"kind": "calls", "lines": lines, "ambiguous": ambiguous, "candidates": count},
                )
                for target in targets
            )
