"""Find every use of an identifier: a text search confirmed by the syntax tree.

References are not stored at index time: a repository holds millions of identifier
occurrences, and capturing them all would cost more than the rest of indexing together (see
``benchmarks/bench_codegraph.py``). Instead ``find_references`` looks for the name as a whole
word in the files that contain it, re-parses only those files, and keeps a hit when the
smallest named node covering it is exactly the word and is not part of a string or comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from tree_sitter import Node

from rlm_cli.codegraph.model import Reference
from rlm_cli.codegraph.parse import parser_for

# Node types a word may be covered by and still not be code.
_NOT_CODE = re.compile(r"string|comment|content|fragment|heredoc|char|escape|regex|text")


def find_references(
    name: str, files: Iterable[tuple[str, str]], texts: Mapping[str, str]
) -> list[Reference]:
    """References to ``name`` in ``files`` (path, language), in the order given."""
    if not name:
        return []
    word = name.encode("utf-8", "surrogatepass")
    pattern = _word_pattern(word)
    found: list[Reference] = []
    for path, language in files:
        text = texts[path]
        if name not in text:
            continue
        source = text.encode("utf-8", "surrogatepass")
        hits = [match.start() for match in pattern.finditer(source)]
        if not hits:
            continue
        root = parser_for(language).parse(source).root_node
        line, counted_to = 1, 0
        for start in hits:
            if _is_code_word(root, start, start + len(word)):
                line += source.count(b"\n", counted_to, start)
                counted_to = start
                found.append(_reference(path, source, start, line))
    return found


def _word_pattern(word: bytes) -> re.Pattern[bytes]:
    # Word edges only where the name itself starts/ends with a word character, so that
    # names such as `empty?` or `$x` can be searched too. Non-ASCII bytes count as word.
    before = rb"(?<![\w\x80-\xff])" if re.match(rb"[\w\x80-\xff]", word[:1]) else b""
    after = rb"(?![\w\x80-\xff])" if re.match(rb"[\w\x80-\xff]", word[-1:]) else b""
    return re.compile(before + re.escape(word) + after)


def _is_code_word(root: Node, start: int, end: int) -> bool:
    node = root.named_descendant_for_byte_range(start, end)
    if node is None or node.start_byte != start or node.end_byte != end:
        return False
    while node is not None and node.start_byte == start and node.end_byte == end:
        if _NOT_CODE.search(node.type) or node.is_error:
            return False
        node = node.parent
    return True


def _reference(path: str, source: bytes, start: int, line: int) -> Reference:
    line_start = source.rfind(b"\n", 0, start) + 1
    line_end = source.find(b"\n", start)
    if line_end < 0:
        line_end = len(source)
    column = len(source[line_start:start].decode("utf-8", "replace")) + 1
    text = source[line_start:line_end].decode("utf-8", "replace").strip()
    return Reference(path, line, column, text)
