"""`Context`: the REPL variable `context` — the whole input as one `str`, plus structured access.

This module runs in the worker process, which imports only the standard library, so it must
stay free of third-party imports (and of imports from the rest of rlm).

The text is what the paper's prompts expect to slice and search: with one file it is that file's
text unchanged; with several, each file's text follows a header line `=== FILE: <path> ===` and
ends with a newline. On top of the text, `files`, `grep` and `chunks` give the root
model structure without it having to re-derive file boundaries or line numbers.

Memory: a one-file context keeps a single copy of its text. `files` then maps the one path to
the context object itself (a `str` subclass, equal to the file's text), instead of holding a
second, equal string. A many-file context keeps each file's text as well as the joined text
(twice the size), since per-file search needs each text on its own.

Both `Context` and `Chunk` show a short summary as their repr, not their text: evaluating
`context` or `chunks` at the REPL prompt should not flood the model with megabytes of text.
`str(x)`, `print(x)` and slicing give the text as usual.
"""

from __future__ import annotations

import bisect
import fnmatch
import re
import types
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["Chunk", "Context", "Hit", "Passage"]

LINE_CAP = 500  # characters of a grep hit's line
SHOWN_CAP = 240  # characters of a line that search or around shows: a few fit a small model's output cap
ELLIPSIS = "…"
_GLOB_CHARS = frozenset("*?[")


def file_header(path: str) -> str:
    """The line that opens each file's text in a many-file context (newline included)."""
    shown = path.replace("\n", "\\n").replace("\r", "\\r")  # a header is exactly one line
    return f"=== FILE: {shown} ===\n"


class Hit(NamedTuple):
    """One line of one file that matches a `grep` pattern."""

    path: str
    line: int  # 1-based, within `path`
    text: str  # the line without its newline; lines longer than LINE_CAP are cut around the match

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"

    def __repr__(self) -> str:
        return str(self)


class Passage(NamedTuple):
    """A run of lines that `search` ranked for a query: lines `line` to `end_line` of `path`."""

    path: str
    line: int
    text: str
    score: float
    end_line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"

    def __repr__(self) -> str:
        return f"<Passage {self.path}:{self.line}, score {self.score:.2f}>"


class Chunk(str):
    """A piece of the context text that knows where it came from.

    `path`/`start_line` locate its first character, `end_line` its last character (in the last
    of `paths`); a header line counts as line 1 of the file it opens.
    """

    path: str
    start_line: int
    end_line: int
    paths: tuple[str, ...]

    def __new__(
        cls, text: str, path: str, start_line: int, end_line: int, paths: tuple[str, ...]
    ) -> Chunk:
        chunk = super().__new__(cls, text)
        chunk.path = path
        chunk.start_line = start_line
        chunk.end_line = end_line
        chunk.paths = paths
        return chunk

    def __repr__(self) -> str:
        if len(self.paths) <= 1:
            where = f"{self.path}:{self.start_line}-{self.end_line}"
        else:
            where = f"{self.path}:{self.start_line} .. {self.paths[-1]}:{self.end_line}"
            where += f" ({len(self.paths)} files)"
        return f"<Chunk {where}, {len(self):,} chars>"


class Context(str):
    """The whole input as one str, plus structured access."""

    _paths: tuple[str, ...]
    _texts: dict[str, str] | None  # None for one file: its text is `self`
    _header_starts: list[int]  # offset of each file's header line (its text's start if none)
    _text_starts: list[int]  # offset where each file's text begins

    def __new__(cls, files: Mapping[str, str]) -> Context:
        paths = tuple(files)
        if len(paths) <= 1:
            self = super().__new__(cls, files[paths[0]] if paths else "")
            self._texts = None
            self._header_starts = [0] if paths else []
            self._text_starts = list(self._header_starts)
        else:
            pieces: list[str] = []
            header_starts: list[int] = []
            text_starts: list[int] = []
            offset = 0
            for path, text in files.items():
                header = file_header(path)
                header_starts.append(offset)
                offset += len(header)
                text_starts.append(offset)
                offset += len(text)
                pieces += (header, text)
                if text and not text.endswith("\n"):
                    pieces.append("\n")
                    offset += 1
            self = super().__new__(cls, "".join(pieces))
            self._texts = dict(files)
            self._header_starts = header_starts
            self._text_starts = text_starts
        self._paths = paths
        return self

    def __repr__(self) -> str:
        count = len(self._paths)
        files = f"{count} file" if count == 1 else f"{count} files"
        return f"<Context: {files}, {len(self):,} chars; print(context[:2000]) to read>"

    @property
    def files(self) -> Mapping[str, str]:
        """path -> text, in load order (read-only)."""
        if self._texts is not None:
            return types.MappingProxyType(self._texts)
        return types.MappingProxyType({path: self for path in self._paths})

    def _text(self, index: int) -> str:
        return self if self._texts is None else self._texts[self._paths[index]]

    def _selected(self, path: str | None) -> list[int]:
        """Indexes of the files `path` names: all, one exact path, or an fnmatch glob."""
        if path is None:
            return list(range(len(self._paths)))
        if path in self._paths:
            return [self._paths.index(path)]
        if _GLOB_CHARS.intersection(path):
            return [i for i, p in enumerate(self._paths) if fnmatch.fnmatchcase(p, path)]
        example = f" (e.g. {self._paths[0]!r})" if self._paths else ""
        raise ValueError(
            f"no file {path!r} in context.files{example}; a glob such as '*.py' matches several"
        )

    def grep(
        self, pattern: str | re.Pattern[str], path: str | None = None, max_hits: int = 1000
    ) -> list[Hit]:
        """Lines matching the regular expression `pattern` (re.MULTILINE), one hit per line,
        in file order; `path` limits the search to one path or an fnmatch glob over paths."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.MULTILINE)
        hits: list[Hit] = []
        for index in self._selected(path):
            if len(hits) >= max_hits:
                break
            _grep_text(regex, self._paths[index], self._text(index), hits, max_hits)
        return hits

    def chunks(self, max_chars: int = 100_000) -> list[Chunk]:
        """Consecutive pieces that join back into the whole text, each at most `max_chars`
        (only a longer single line is cut mid-line), each ending at a line end, and ending at
        a file boundary instead when one falls in the chunk's second half."""
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, not {max_chars}")
        size = len(self)
        cursor = _LineCursor(self, self._header_starts, self._text_starts)
        pieces: list[Chunk] = []
        start = 0
        while start < size:
            end = self._chunk_end(start, max_chars)
            first_file, first_line = cursor.locate(start)
            last_file, last_line = cursor.locate(end - 1)
            paths = self._paths[first_file : last_file + 1]
            pieces.append(Chunk(self[start:end], paths[0], first_line, last_line, paths))
            start = end
        return pieces

    def _chunk_end(self, start: int, max_chars: int) -> int:
        limit = start + max_chars
        if limit >= len(self):
            return len(self)
        if len(self._header_starts) > 1:
            index = bisect.bisect_right(self._header_starts, limit) - 1
            boundary = self._header_starts[index] if index >= 0 else -1
            if boundary > start and boundary - start >= max_chars // 2:
                return boundary
        newline = self.rfind("\n", start, limit)
        return newline + 1 if newline != -1 else limit

    # -- ranked search and reading around a place (additions to DESIGN.md's names) ------------

    _search_index: Any = None

    def search(self, query: str, k: int = 5, lines: int = 1) -> list[Passage]:
        """The `k` runs of `lines` lines (one line by default) that best match the words of `query`,
        best first (BM25), each line cut to SHOWN_CAP characters around its matching words.

        Unlike grep it ranks: lines sharing more (and rarer) words with the query come first, so
        the whole question can be the query; it returns nothing only when no word of it occurs.
        """
        if self._search_index is None or self._search_index.lines != lines:
            self._search_index = _Bm25(self._passages(lines), lines)
        return self._search_index.top(str(query), k)

    def _passages(self, lines: int) -> list[tuple[str, int, str, int]]:
        out: list[tuple[str, int, str, int]] = []
        for index, path in enumerate(self._paths):
            rows = self._text(index).splitlines()
            for start in range(0, len(rows), max(1, lines)):
                block = rows[start : start + max(1, lines)]
                out.append((path, start + 1, "\n".join(block), start + len(block)))
        return out

    def around(self, where: Any, before: int = 2, after: int = 2, path: str | None = None, numbered: bool = True) -> str:
        """The numbered lines around a place: `where` is a hit or passage (.path, .line) or a line
        number (in `path`, or the first file); long lines are cut to SHOWN_CAP characters.
        A list of places gives their windows in the text's order, merged where they overlap,
        with `--` between. `numbered=False` leaves the numbers out, for a sub-model that reads
        them as answers."""
        places: list[Any] = where if isinstance(where, list) else [where]
        windows: dict[int, list[tuple[int, int]]] = {}
        for place in places:
            line = int(getattr(place, "line", place))
            last = int(getattr(place, "end_line", line))
            at = getattr(place, "path", path)
            index = self._selected(at)[0] if at is not None else 0
            windows.setdefault(index, []).append((max(1, line - before), last + after))
        shown: list[str] = []
        for index in sorted(windows):
            rows = self._text(index).splitlines()
            merged: list[list[int]] = []
            for first, last in sorted(windows[index]):
                if merged and first <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], last)
                else:
                    merged.append([first, last])
            for first, last in merged:
                numbers = range(first, min(len(rows), last) + 1)
                lines = (_shown_line(rows[n - 1], 0, len(rows[n - 1]), 0, SHOWN_CAP) for n in numbers)
                shown.append("\n".join(f"{n}: {text}" if numbered else text for n, text in zip(numbers, lines)))
        return "\n--\n".join(shown)

    # -- the code graph (DESIGN.md): answered by a CodeIndex the worker attaches -------------

    _code: Any = None

    def attach_code_index(self, index: Any) -> None:
        """Give the context its code graph (an `rlm_cli.codegraph.CodeIndex` over `files`)."""
        self._code = index

    def _code_index(self) -> Any:
        if self._code is None:
            raise LookupError(
                "no code graph: this context holds no source files in a language rlm parses;"
                " use context.grep(...) and context.chunks(...)"
            )
        return self._code

    def symbols(self, name: str | None = None, kind: str | None = None, path: str | None = None) -> list[Any]:
        """Definitions: .name .qualname .kind .path .line .start_line .end_line .language .signature."""
        return self._code_index().symbols(name=name, kind=kind, path=path)

    def source(self, symbol_or_qualname: Any) -> str:
        """The source text of a symbol (or of the one symbol a qualname names)."""
        return self._code_index().source(symbol_or_qualname)

    def callers(self, name: str) -> list[Any]:
        """The innermost function or method around every call of `name`, each once."""
        return self._code_index().callers(name)

    def references(self, name: str) -> list[Any]:
        """Every place the identifier `name` is used in code: .path .line .column .text."""
        return self._code_index().references(name)

    def imports(self, path: str | None = None) -> list[Any]:
        """Import statements: .path .line .text .module .resolved (a file here, or None)."""
        return self._code_index().imports(path)

    def outline(self, path: str | None = None) -> str:
        """A compact tree of files and their symbols."""
        return self._code_index().outline(path)

    @property
    def graph(self) -> Any:
        """The code graph as a networkx.MultiDiGraph (files, symbols; defines/contains/imports/calls)."""
        return self._code_index().graph

_WORDS = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its "
    "of on or our so than that the their them then there these they this to was we were what when where which "
    "who whom why will with would you your".split()
)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _terms(text: str) -> list[str]:
    """Lower-cased words without stop words, a plural s dropped: the units BM25 counts."""
    return [_stem(w) for w in _WORDS.findall(text.lower()) if w not in _STOP]


class _Bm25:
    """Okapi BM25 over passages, in the standard library (the worker imports nothing else)."""

    K1, B = 1.5, 0.75
    RERANKED = 10  # candidates per result that the phrase bonus may reorder

    def __init__(self, passages: list[tuple[str, int, str, int]], lines: int) -> None:
        self.lines = lines
        self.passages = passages
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.lengths: list[int] = []
        for i, (_, _, text, _) in enumerate(passages):
            counts = Counter(_terms(text))
            self.lengths.append(sum(counts.values()))
            for term, n in counts.items():
                self.postings.setdefault(term, []).append((i, n))
        self.average = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0

    def top(self, query: str, k: int) -> list[Passage]:
        import math

        asked = _terms(query)
        terms = set(asked)
        scores: dict[int, float] = {}
        idf: dict[str, float] = {}
        total = len(self.passages)
        for term in terms:
            posting = self.postings.get(term, [])
            idf[term] = math.log(1 + (total - len(posting) + 0.5) / (len(posting) + 0.5))
            for i, n in posting:
                norm = n + self.K1 * (1 - self.B + self.B * self.lengths[i] / (self.average or 1.0))
                scores[i] = scores.get(i, 0.0) + idf[term] * n * (self.K1 + 1) / norm
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[: max(0, k) * self.RERANKED]
        phrases = {pair: (idf[pair[0]] + idf[pair[1]]) / 2 for pair in zip(asked, asked[1:])}
        rescored = [(i, score + _phrase_bonus(self.passages[i][2], phrases)) for i, score in ranked]
        best = sorted(rescored, key=lambda item: (-item[1], item[0]))[: max(0, k)]
        out = []
        for i, score in best:
            path, line, text, end = self.passages[i]
            out.append(Passage(path, line, _clipped(text, terms), round(score, 3), end))
        return out


def _phrase_bonus(text: str, phrases: Mapping[tuple[str, str], float]) -> float:
    """The weight of the query's word pairs that `text` has side by side: of lines sharing the
    same words with a question ("a limit ended the run"), the one saying its phrase ranks first."""
    if not phrases:
        return 0.0
    words = _terms(text)
    return sum(phrases.get(pair, 0.0) for pair in set(zip(words, words[1:])))


def _clipped(text: str, terms: set[str]) -> str:
    """Each line of `text` cut to SHOWN_CAP characters around its first query word."""
    rows = []
    for row in text.split("\n"):
        found = next((m.start() for m in _WORDS.finditer(row.lower()) if _stem(m.group(0)) in terms), 0)
        rows.append(_shown_line(row, 0, len(row), found, SHOWN_CAP))
    return "\n".join(rows)


def _grep_text(
    regex: re.Pattern[str], path: str, text: str, hits: list[Hit], max_hits: int
) -> None:
    """Append hits in `text` to `hits` until `max_hits`.

    Searches from the line after each hit (one hit per line, without visiting every match on a
    busy line) and counts newlines only between successive hits, so a 50 MB text costs one
    regex scan plus one newline count.
    """
    size = len(text)
    line, counted, position = 1, 0, 0
    while len(hits) < max_hits and position <= size:
        match = regex.search(text, position)
        if match is None:
            return
        found = match.start()
        line += text.count("\n", counted, found)
        counted = found
        line_start = text.rfind("\n", 0, found) + 1
        line_end = text.find("\n", found)
        if line_end == -1:
            line_end = size
        hits.append(Hit(path, line, _shown_line(text, line_start, line_end, found)))
        position = max(match.end(), line_end + 1)


def _shown_line(text: str, start: int, end: int, found: int, cap: int = LINE_CAP) -> str:
    """The line, or for a very long one (minified code) a `cap` window holding the match."""
    if end > start and text[end - 1] == "\r":
        end -= 1
    if end - start <= cap:
        return text[start:end]
    left = max(start, min(found - cap // 5, end - cap))
    right = left + cap
    return (ELLIPSIS if left > start else "") + text[left:right] + (ELLIPSIS if right < end else "")


class _LineCursor:
    """Maps ascending offsets in a context to (file index, 1-based line), counting newlines
    only since the previous offset, so numbering all chunks of 50 MB is one pass."""

    def __init__(self, text: str, header_starts: Sequence[int], text_starts: Sequence[int]):
        self._text = text
        self._header_starts = header_starts
        self._text_starts = text_starts
        self._file = -1
        self._position = 0
        self._line = 1

    def locate(self, offset: int) -> tuple[int, int]:
        index = max(bisect.bisect_right(self._header_starts, offset) - 1, 0)
        text_start = self._text_starts[index]
        if offset < text_start:  # on the header line: it introduces the file's line 1
            return index, 1
        if index != self._file or offset < self._position:
            self._file, self._position, self._line = index, text_start, 1
        self._line += self._text.count("\n", self._position, offset)
        self._position = offset
        return index, self._line
