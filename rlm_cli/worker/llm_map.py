"""`llm_map(instruction, items)`: one sub-model answer per item, in batches, for the REPL.

Short items (lines, records, hits) go many to a prompt, numbered, and the reply is read back
by number; long items (chunks) go one to a prompt. An item whose answer is missing from a
batch's reply is asked again on its own, so the result always has one string per item, in
order (an `ERROR: ...` string where even that failed). This module runs in the worker and
imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

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
