"""The tags queries: one ``.scm`` file per main language, a generated query for every other one.

Capture names follow tree-sitter's tags convention, with a few additions of ours:

    @definition.<kind>  a definition (kinds: function method class struct interface enum trait
                        module type constant macro); its @name is in the same pattern
    @receiver           in a definition pattern: the type a method belongs to (Go receivers,
                        C++ ``Type::method``), prefixed to the qualified name
    @scope              a block that names what it contains without being a symbol itself
                        (Rust ``impl T``, Swift ``extension T``); its @name gives the prefix
    @reference.call     the called name of a call. Upstream tags queries capture the whole
                        call and its @name; one capture per call is measurably cheaper, and
                        calls are the most numerous captures by far
    @import             an import statement, with @import.module and @import.name parts

Captures are read with ``QueryCursor.captures`` (in document order), not ``matches``: a
definition's @name is the first @name at or after the definition's start. Every query keeps
to that: names come before anything nested that has a name of its own.

A ``.scm`` file whose first line is ``; inherits: <name>`` is appended to ``<name>.scm``
(``_ecma.scm`` holds what JavaScript, TypeScript and TSX share).
Languages without a file get a generated query over node types whose names say they define
something (``function_definition``, ``class_declaration``, ...) and that have a ``name`` field.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

from tree_sitter import Language, Query
from tree_sitter_language_pack import get_language

#: Languages with a dedicated query file.
QUERY_LANGUAGES: tuple[str, ...] = (
    "python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "csharp",
    "ruby", "php", "kotlin", "swift", "bash",
)

KINDS: tuple[str, ...] = (
    "function", "method", "class", "struct", "interface", "enum", "trait", "module", "type",
    "constant", "macro", "definition",
)

_INHERITS = re.compile(r";\s*inherits:\s*(\w+)")

# Node types the generic query looks at, and those it must not mistake for definitions.
_GENERIC_DEFINITION = re.compile(
    r"definition|declaration|function|class|method|struct|interface|enum|trait|module|namespace"
    r"|subroutine|impl"
)
_GENERIC_NOT_DEFINITION = re.compile(
    r"call|invocation|parameter|argument|reference|literal|expression|variable|field|constant"
    r"|type_identifier|_type$|modifier|body|list|clause|specifier|pattern"
)
_GENERIC_CALL = re.compile(r"call|invocation")

_GENERIC_KINDS: tuple[tuple[str, str], ...] = (
    ("interface", "interface"), ("protocol", "interface"), ("trait", "trait"),
    ("struct", "struct"), ("enum", "enum"), ("class", "class"), ("module", "module"),
    ("namespace", "module"), ("object", "class"), ("method", "method"), ("function", "function"),
    ("subroutine", "function"), ("type", "type"),
)


def query_text(language: str) -> str | None:
    """The text of ``language``'s query file with what it inherits, or None if it has none."""
    if language not in QUERY_LANGUAGES:
        return None
    return _read_query(language)


def _read_query(name: str) -> str:
    text = resources.files("rlm_cli.codegraph").joinpath("queries", f"{name}.scm").read_text(
        encoding="utf-8"
    )
    inherited = _INHERITS.match(text)
    if inherited:
        text = _read_query(inherited.group(1)) + "\n" + text
    return text


@functools.lru_cache(maxsize=None)
def tags_query(language: str) -> Query:
    """The compiled tags query of ``language`` (dedicated or generated)."""
    lang = get_language(language)  # type: ignore[arg-type]
    text = query_text(language)
    if text is None:
        text = generic_query_text(lang)
    return Query(lang, text)


def generic_query_text(lang: Language) -> str:
    """A query capturing every node that may define something and every call-like node.

    Whether a captured node has a ``name`` field is decided while extracting, not here:
    compiling one pattern per node type to test its fields is slow for large grammars.
    """
    definitions: set[str] = set()
    calls: set[str] = set()
    for kind_id in range(lang.node_kind_count):
        if not (lang.node_kind_is_named(kind_id) and lang.node_kind_is_visible(kind_id)):
            continue
        node_type = lang.node_kind_for_id(kind_id)
        if not node_type or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", node_type):
            continue
        if _GENERIC_CALL.search(node_type):
            calls.add(node_type)
        elif _GENERIC_DEFINITION.search(node_type) and not _GENERIC_NOT_DEFINITION.search(
            node_type
        ):
            definitions.add(node_type)
    patterns = []
    if definitions:
        patterns.append("[" + " ".join(f"({t})" for t in sorted(definitions)) + "] @generic.definition")
    if calls:
        patterns.append("[" + " ".join(f"({t})" for t in sorted(calls)) + "] @generic.call")
    # A query must have a pattern; this one can match nothing that matters.
    return "\n".join(patterns) or "(ERROR) @generic.none"


def generic_kind(node_type: str) -> str:
    """The symbol kind a generic definition node type suggests."""
    for word, kind in _GENERIC_KINDS:
        if word in node_type:
            return kind
    return "definition"


@functools.lru_cache(maxsize=1)
def queries_version() -> str:
    """A digest of every query file: cached parse results are only valid for the same queries."""
    digest = hashlib.sha256()
    for language in QUERY_LANGUAGES:
        digest.update(language.encode())
        digest.update((query_text(language) or "").encode())
    return digest.hexdigest()[:16]
