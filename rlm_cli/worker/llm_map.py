"""`llm_map(instruction, items)` and `llm_find(question, pieces)`: sub-model answers per item, for the REPL.

Short items (lines, records, hits) go many to a prompt, numbered, and the reply is read back
by number; long items (chunks) go one to a prompt. An item whose answer is missing from a
batch's reply is asked again on its own, so the result always has one string per item, in
order (an `ERROR: ...` string where even that failed).

`llm_find` is the scan a small root model needs when the text says the fact in other words:
it asks every piece, and keeps only answers the piece itself holds, with the line that holds
them. A small sub-model asked about a piece without the fact often invents one, and a small
root takes the first answer it sees. This module runs in the worker and imports only the
standard library (and rlm's stdlib-only text checks).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from rlm_cli.loop.grounding import content_words, not_found, support, tokens

BATCH_CHARS = 3_000  # item text per prompt when items are short
MAX_BATCH = 25  # items per prompt
LONG_ITEM = 600  # an item at least this long goes alone in its prompt

AskBatched = Callable[[list[str]], list[str]]

_NUMBERED = re.compile(r"^\s*\[?(\d+)[\]:.)]\s*(.*?)\s*$")


def _text(item: object) -> str:
    """An item's text: a hit's or passage's `.text`, else str(item)."""
    text = getattr(item, "text", None)
    return text if isinstance(text, str) else str(item)


def _groups(texts: Sequence[str]) -> list[list[int]]:
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        if len(text) >= LONG_ITEM:
            groups.append([i])
            continue
        if current and (size + len(text) > BATCH_CHARS or len(current) >= MAX_BATCH):
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += len(text)
    if current:
        groups.append(current)
    return groups


def _one_prompt(instruction: str, text: str) -> str:
    return f"{instruction}\n\n<text>\n{text}\n</text>\n\nAnswer briefly."


def _batch_prompt(instruction: str, texts: Sequence[str]) -> str:
    items = "\n".join(f"{n}. {' '.join(t.split())}" for n, t in enumerate(texts, 1))
    return (
        f"{instruction}\n\nDo this for each of the {len(texts)} numbered items below. Reply with exactly one line "
        f"per item, in the form `<number>: <answer>`, from 1 to {len(texts)}, and nothing else.\n\n{items}"
    )


def parse_numbered(reply: str, count: int) -> dict[int, str]:
    """The answers of a numbered reply, by item number (1-based); lines out of range are ignored."""
    found: dict[int, str] = {}
    for line in reply.splitlines():
        match = _NUMBERED.match(line)
        if match and 1 <= int(match.group(1)) <= count and int(match.group(1)) not in found:
            found[int(match.group(1))] = match.group(2).strip("`*")
    return found


def llm_map(ask_batched: AskBatched, instruction: str, items: Iterable[object]) -> list[str]:
    """The sub-model's answer to `instruction` for each item, in order."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, not {type(instruction).__name__}")
    if isinstance(items, str):
        raise TypeError("items must be a list (e.g. context.splitlines() or context.chunks()), not one str")
    texts = [_text(item) for item in items]
    answers: list[str | None] = [None] * len(texts)
    groups = _groups(texts)
    prompts = [_one_prompt(instruction, texts[g[0]]) if len(g) == 1 else _batch_prompt(instruction, [texts[i] for i in g])
               for g in groups]
    again: list[int] = []
    for group, reply in zip(groups, ask_batched(prompts) if prompts else []):
        if len(group) == 1:
            answers[group[0]] = reply.strip()
            continue
        parsed = {} if reply.startswith("ERROR:") else parse_numbered(reply, len(group))
        for n, i in enumerate(group, 1):
            if n in parsed:
                answers[i] = parsed[n]
            else:
                again.append(i)
    if again:
        for i, reply in zip(again, ask_batched([_one_prompt(instruction, texts[i]) for i in again])):
            answers[i] = reply.strip()
    return [a if a is not None else "ERROR: no answer" for a in answers]


FIND_SUFFIX = " Answer from this text only, in a few words, or say NONE."


class Found(str):
    """One answer `llm_find` kept: the answer as a str, with the line of its piece that holds it."""

    path: str | None
    line: int | None  # 1-based; None when the piece was not a chunk of the context
    text: str  # the line holding the answer
    rarity: float  # mean inverse line frequency of the answer's words across all the pieces
    shares: float  # the share of the question's words that line has

    def __new__(cls, answer: str, path: str | None, line: int | None, text: str, rarity: float, shares: float) -> Found:
        found = super().__new__(cls, answer)
        found.path, found.line, found.text, found.rarity, found.shares = path, line, text, rarity, shares
        return found

    def __repr__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "its piece"
        return f"{str(self)!r} ({where}: {' '.join(self.text.split())[:200]})"


def _holding_line(answer: str, asked: set[str], piece: str) -> tuple[int, str]:
    """The index and text of the piece's line sharing most words with the answer; of lines
    sharing as many, the one sharing most words with the question (a "5" is on many lines)."""
    wanted = set(tokens(answer))
    best, best_score = (0, ""), (-1, -1)
    for index, line in enumerate(piece.splitlines()):
        words = set(tokens(line))
        score = (len(wanted & words), len(asked & words))
        if score > best_score:
            best, best_score = (index, line), score
    return best


_DIGIT = re.compile(r"\d")


def _shape(word: str) -> str:
    """A word with its digits masked: every line's timestamp or request id has the same shape."""
    return _DIGIT.sub("0", word)


def _idf(word: str, lines: Counter[str], total: int) -> float:
    """The inverse line frequency of the word's shape (`lines` counts shapes)."""
    return math.log((total + 1) / (lines[_shape(word)] + 1))


def _rarity(answer: str, lines: Counter[str], total: int) -> float:
    """How rare the answer's words are across the text's lines: a fact is stated once, while an
    answer a sub-model made up from a piece without the fact is built of its everyday words, or
    is the text's scaffolding (in a log, the timestamp every line starts with, each one unique
    but all of one shape)."""
    seen = [word for word in set(content_words(answer)) if _shape(word) in lines]
    return sum(_idf(word, lines, total) for word in seen) / len(seen) if seen else 0.0


def llm_find(ask_batched: AskBatched, question: str, pieces: Iterable[object]) -> list[Found]:
    """The answers to `question` that the pieces hold, each once, likeliest first.

    An answer is kept only when its own piece holds its numbers and most of its words. They are
    ranked by the rare words their line shares with the question (a question in other words
    shares none) plus how rare their own words are in the whole text (see `_rarity`)."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, not {type(question).__name__}")
    items = pieces if isinstance(pieces, str) else list(pieces)
    answers = llm_map(ask_batched, question + FIND_SUFFIX, items)
    held: list[tuple[str, object]] = []
    for item, answer in zip(items, answers):
        answer = answer.strip().strip("`*").strip()
        if answer and not answer.startswith("ERROR:") and "NONE" not in answer.upper() and not not_found(answer):
            if support(answer, _text(item)) is not None:
                held.append((answer, item))
    if not held:
        return []
    lines: Counter[str] = Counter()
    total = 0
    for item in items:
        for line in _text(item).splitlines():
            lines.update({_shape(word) for word in tokens(line)})
            total += 1
    asked = set(content_words(question))
    ranked = []
    for answer, item in held:
        index, line = _holding_line(answer, asked, _text(item))
        start = getattr(item, "start_line", None)
        where = None if start is None else start + index
        shared = asked & set(tokens(line))
        shares = len(shared) / len(asked) if asked else 0.0
        found = Found(answer, getattr(item, "path", None), where, line, _rarity(answer, lines, total), shares)
        relevance = sum(_idf(word, lines, total) for word in shared)
        ranked.append((relevance + found.rarity, found))
    ranked.sort(key=lambda pair: -pair[0])
    once: dict[str, Found] = {}  # the same answer from several pieces: the one on the best line
    for _, found in ranked:
        once.setdefault(" ".join(tokens(found)), found)
    return list(once.values())
