"""Parse one file with tree-sitter and read its definitions, calls and imports.

``parse_file(path, text)`` and ``parse_source(text, language)`` are pure functions: the process
pool runs them and the cache stores what they return, so they return plain data
(``FileIndex``) and never look at other files.

How the rows are made from the captures of the tags query (``queries.py``):
- a definition's qualified name joins the names of every definition and scope that encloses
  it (``Outer.Inner.method``, ``f.g`` for a nested function), plus its receiver if any;
- a ``function`` whose innermost enclosing definition is class-like (class, struct, interface,
  trait, enum, a Rust ``impl``...) is a ``method``, as is one with a receiver;
- ``start_line`` reaches back over decorators/attributes written before the definition;
- a call belongs to the innermost function or method whose *body* holds it, so a decorator or
  a default value is charged to the scope that evaluates it, as Python does.
"""

from __future__ import annotations

import bisect
import functools
import operator
import re
from typing import Any

from tree_sitter import Node, Parser, QueryCursor
from tree_sitter_language_pack import get_parser

from rlm_cli.codegraph.languages import language_for
from rlm_cli.codegraph.model import (
    SKIP_PARSE_ERROR,
    SKIP_TOO_LARGE,
    SKIP_UNKNOWN_LANGUAGE,
    STATUS_ERRORS,
    STATUS_OK,
    CallRow,
    FileIndex,
    ImportRow,
    SymbolRow,
)
from rlm_cli.codegraph.queries import generic_kind, tags_query

DEFAULT_MAX_FILE_CHARS = 1_000_000

_CLASS_LIKE = frozenset({"class", "struct", "interface", "trait", "enum", "scope"})
# Ruby's `def` inside a module is a method of whatever includes the module.
_CLASS_LIKE_BY_LANGUAGE = {"ruby": _CLASS_LIKE | {"module"}}
_FUNCTION_LIKE = frozenset({"function", "method"})
# Written before a definition and part of it (Python/TS decorators, Rust attributes, ...).
_DECORATORS = frozenset({"decorator", "attribute_item"})
_TRANSPARENT = frozenset({"comment", "line_comment", "block_comment"})
# Wrappers whose first line belongs to the definition they wrap.
_WRAPPERS = frozenset({"template_declaration"})
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*[?!]?")
_SIGNATURE_CHARS = 200
_START = operator.attrgetter("start_byte")
_IMPORT_TEXT_CHARS = 300


def parse_file(
    path: str, text: str, *, max_file_chars: int = DEFAULT_MAX_FILE_CHARS
) -> FileIndex:
    """Index one file: its language from ``path`` (or shebang), then ``parse_source``."""
    language = language_for(path, text)
    if language is None:
        return FileIndex(None, SKIP_UNKNOWN_LANGUAGE, count_lines(text))
    if len(text) > max_file_chars:
        return FileIndex(language, SKIP_TOO_LARGE, count_lines(text))
    return parse_source(text, language)


def count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


@functools.lru_cache(maxsize=None)
def parser_for(language: str) -> Parser:
    """The (per-process) tree-sitter parser of ``language``."""
    return get_parser(language)  # type: ignore[arg-type]


def parse_source(text: str, language: str) -> FileIndex:
    """Parse ``text`` as ``language`` and read its symbols, calls and imports."""
    lines = count_lines(text)
    source = text.encode("utf-8", "surrogatepass")
    try:
        tree = parser_for(language).parse(source)
    except (ValueError, RuntimeError):
        return FileIndex(language, SKIP_PARSE_ERROR, lines)
    root = tree.root_node
    captures = QueryCursor(tags_query(language)).captures(root)
    symbols, bodies = _symbols(source, language, captures)
    calls = _calls(source, captures, bodies)
    imports = _imports(source, captures)
    if not root.has_error:
        status = STATUS_OK
    elif symbols or calls or imports:
        status = STATUS_ERRORS
    else:
        return FileIndex(language, SKIP_PARSE_ERROR, lines)
    return FileIndex(language, status, lines, symbols, calls, imports)


# When one node matches several definition patterns (a Go struct is also a type spec, a Kotlin
# enum class also a class), the more specific kind wins.
_KIND_RANK = {"function": 0, "class": 0, "type": 0, "definition": 0, "method": 1}


def _definitions(
    captures: dict[str, list[Node]],
) -> list[tuple[int, int, str, Node, Node | None]]:
    """(start, end, kind, node, name node) of each definition and scope, outermost first."""
    # key -> (kind, node, name node when known without pairing)
    found: dict[tuple[int, int], tuple[str, Node, Node | None]] = {}
    for capture, nodes in captures.items():
        if capture.startswith("definition."):
            kind = capture[11:]
        elif capture == "scope":
            kind = "scope"
        else:
            continue
        for node in nodes:
            key = (node.start_byte, node.end_byte)
            known = found.get(key)
            if known is None or _KIND_RANK.get(kind, 2) > _KIND_RANK.get(known[0], 2):
                found[key] = (kind, node, None)
    for node in captures.get("generic.definition", ()):
        name = node.child_by_field_name("name")
        key = (node.start_byte, node.end_byte)
        if name is not None and key not in found and name.end_byte - name.start_byte < 200:
            found[key] = (generic_kind(node.type), node, name)
    # Pair each query definition with its name: the first @name at or after its start.
    names = sorted(captures.get("name", ()), key=_START)
    result: list[tuple[int, int, str, Node, Node | None]] = []
    next_name = 0
    for (start, end), (kind, node, name_node) in sorted(
        found.items(), key=lambda item: (item[0][0], -item[0][1])
    ):
        if name_node is None:
            while next_name < len(names) and names[next_name].start_byte < start:
                next_name += 1
            if next_name < len(names) and names[next_name].end_byte <= end:
                name_node = names[next_name]
                next_name += 1
        result.append((start, end, kind, node, name_node))
    return result


def _symbols(
    source: bytes, language: str, captures: dict[str, list[Node]]
) -> tuple[tuple[SymbolRow, ...], list[tuple[int, int, int]]]:
    """The symbol rows, and the (start, end, row) byte span of each function-like body."""
    class_like = _CLASS_LIKE_BY_LANGUAGE.get(language, _CLASS_LIKE)
    receivers = _receivers(captures)
    rows: list[SymbolRow] = []
    bodies: list[tuple[int, int, int]] = []
    # (end byte, qualname, kind, row index) of the definitions enclosing the current one
    stack: list[tuple[int, str, str, int]] = []
    for start, end, kind, node, name_node in _definitions(captures):
        if name_node is None:
            continue
        while stack and stack[-1][0] <= start:
            stack.pop()
        name = _text(source, name_node)
        prefix, parent_kind = (stack[-1][1] + ".", stack[-1][2]) if stack else ("", "")
        receiver = receivers.get(start)
        if receiver is not None:
            prefix += receiver + "."
            if kind == "function":
                kind = "method"
        elif kind == "function" and parent_kind in class_like:
            kind = "method"
        qualname = prefix + name
        if kind == "scope":
            stack.append((end, qualname, kind, -1))
            continue
        index = len(rows)
        rows.append(
            (
                name,
                qualname,
                kind,
                name_node.start_point[0] + 1,
                _start_row(node) + 1,
                _end_line(node),
                _line_at(source, name_node.start_byte)[:_SIGNATURE_CHARS],
                _enclosing_symbol(stack),
            )
        )
        stack.append((end, qualname, kind, index))
        if kind in _FUNCTION_LIKE:
            body = node.child_by_field_name("body") or node
            bodies.append((body.start_byte, body.end_byte, index))
    bodies.sort(key=lambda b: (b[0], -b[1]))
    return tuple(rows), bodies


def _receivers(captures: dict[str, list[Node]]) -> dict[int, str]:
    """Receiver names by the start byte of the definition that holds them."""
    nodes = captures.get("receiver")
    if not nodes:
        return {}
    starts = sorted(
        node.start_byte
        for capture, found in captures.items()
        if capture.startswith("definition.")
        for node in found
    )
    result: dict[int, str] = {}
    for node in nodes:
        i = bisect.bisect_right(starts, node.start_byte) - 1
        if i >= 0:
            text = node.text.decode("utf-8", "replace") if node.text is not None else ""
            result[starts[i]] = _receiver_name(text)
    return result


def _calls(
    source: bytes, captures: dict[str, list[Node]], bodies: list[tuple[int, int, int]]
) -> tuple[CallRow, ...]:
    """Each call with the innermost function or method whose body holds it."""
    sites = captures.get("reference.call", [])
    generic = captures.get("generic.call")
    if generic:
        sites = sites + [callee for callee in map(_generic_callee, generic) if callee is not None]
    # `captures` is not in document order across patterns.
    sites.sort(key=_START)
    count = len(bodies)
    names: dict[bytes, str] = {}
    rows: list[CallRow] = []
    open_bodies: list[tuple[int, int, int]] = []
    next_body = 0
    for node in sites:
        position = node.start_byte
        while next_body < count and bodies[next_body][0] <= position:
            body = bodies[next_body]
            while open_bodies and open_bodies[-1][1] <= body[0]:
                open_bodies.pop()
            open_bodies.append(body)
            next_body += 1
        while open_bodies and open_bodies[-1][1] <= position:
            open_bodies.pop()
        raw = source[position : node.end_byte]
        name = names.get(raw)
        if name is None:
            name = names[raw] = _call_name(raw.decode("utf-8", "replace"))
        if name:
            row, column = node.start_point
            rows.append((name, row + 1, column, open_bodies[-1][2] if open_bodies else -1))
    return tuple(rows)


def _generic_callee(node: Node) -> Node | None:
    callee = (
        node.child_by_field_name("function")
        or node.child_by_field_name("name")
        or node.child_by_field_name("method")
        or node.child_by_field_name("target")
    )
    if callee is None or callee.end_byte - callee.start_byte > 200:
        return None
    return callee


def _imports(source: bytes, captures: dict[str, list[Node]]) -> tuple[ImportRow, ...]:
    statements = captures.get("import")
    if not statements:
        return ()
    by_start: dict[int, Node] = {node.start_byte: node for node in statements}
    starts = sorted(by_start)
    parts: dict[int, tuple[list[str], list[str]]] = {start: ([], []) for start in starts}
    for capture, slot in (("import.module", 0), ("import.name", 1)):
        for node in captures.get(capture, ()):
            i = bisect.bisect_right(starts, node.start_byte) - 1
            if i >= 0:
                text = _text(source, node)
                parts[starts[i]][slot].append(_module_text(text) if slot == 0 else text)
    rows: list[ImportRow] = []
    for start in starts:
        statement = by_start[start]
        modules, names = parts[start]
        rows.append(
            (
                statement.start_point[0] + 1,
                " ".join(_text(source, statement).split())[:_IMPORT_TEXT_CHARS],
                _unique(modules),
                _unique(names),
            )
        )
    return tuple(rows)


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _line_at(source: bytes, position: int) -> str:
    start = source.rfind(b"\n", 0, position) + 1
    end = source.find(b"\n", position)
    if end < 0:
        end = len(source)
    return source[start:end].decode("utf-8", "replace").strip()


def _start_row(node: Node) -> int:
    """The first row of a definition, reaching back over its decorators and attributes."""
    first = node
    while first.parent is not None and first.parent.type in _WRAPPERS:
        first = first.parent
    sibling = first.prev_named_sibling
    while sibling is not None:
        if sibling.type in _DECORATORS:
            first = sibling
        elif sibling.type not in _TRANSPARENT:
            break
        sibling = sibling.prev_named_sibling
    return first.start_point[0]


def _end_line(node: Node) -> int:
    """The last line of ``node``, 1-based; a node ending with its newline ends on that line."""
    row, column = node.end_point
    if column == 0 and row > node.start_point[0]:
        return row
    return row + 1


def _enclosing_symbol(stack: list[tuple[int, str, str, int]]) -> int:
    for _end, _qualname, kind, index in reversed(stack):
        if kind != "scope":
            return index
    return -1


def _receiver_name(text: str) -> str:
    """``ns::Type<T>`` -> ``ns.Type``: a receiver as a qualified-name prefix."""
    text = re.sub(r"<.*>", "", text)
    return ".".join(part for part in re.split(r"::|\.", text) if part.strip()) or text


def _call_name(text: str) -> str:
    """The bare name of a call target (``Foo::bar`` or ``a.b`` -> ``bar``/``b``)."""
    if _IDENTIFIER.fullmatch(text):
        return text
    found = _IDENTIFIER.findall(re.sub(r"<[^<>]*>", "", text))
    return found[-1] if found else ""


def _module_text(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'<`" and text[-1] in "\"'>`":
        text = text[1:-1]
    return text


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))
