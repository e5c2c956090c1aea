"""Whether a cell found anything, and whether a FINAL answer rests on what the REPL printed.

A small root model that finds nothing tends to run the same cell again and then invent an
answer, and one that finds the answer sometimes FINALs a different one. The loop uses these
checks to steer it: after a cell that found nothing it suggests a different move, and a FINAL
whose answer appears nowhere in what the cells printed gets one more look. They read only the
text the model was shown, so they hold for any input.
"""

from __future__ import annotations

import re

_TOKENS = re.compile(r"[a-z0-9]+(?:[.:/-][a-z0-9]+)*")
# What a cell prints when it found nothing: an empty list, NONE from a helper, a zero count.
_EMPTY = frozenset("none null not found no answer n a 0 false unknown".split())
_NOT_FOUND = re.compile(
    r"\b(not (found|mentioned|stated|specified|available|given|provided|in the (text|context))|no (answer|information|mention)"
    r"|unknown|can ?not (find|determine|be determined)|could ?n[o']t (find|determine)|unable to)\b|^(none|n/?a|null)$"
)
_STOP = frozenset(
    "a an and are as at be by for from in is it of on or the to was were with this that which who what".split()
)
LONG_ANSWER = 300  # characters: past this (summaries, lists) an answer is not checked word by word


def tokens(text: str) -> list[str]:
    """Lower-cased words and numbers; dotted, dashed and colon-joined runs (10.2.3.4, 2027-06-20) stay whole."""
    return _TOKENS.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The tokens of `text` that carry meaning: its words and numbers less the commonest function words."""
    return [word for word in tokens(text) if word not in _STOP]


def found_nothing(output: str) -> bool:
    """A cell's output holds no finding: nothing printed, or only NONE, [], 0, "not found" and the like."""
    words = tokens(output.replace("(no output)", ""))
    return all(word in _EMPTY for word in words)


def not_found(answer: str) -> bool:
    """The answer says the question could not be answered."""
    return bool(_NOT_FOUND.search(" ".join(answer.lower().split()).strip(" .!\"'")))


def support(answer: str, text: str) -> float | None:
    """How much of `answer` the text holds: None unless all its numbers and two thirds of its
    other words occur there, else the share of those other words that do (1.0 with none)."""
    words = content_words(answer)
    if not words:
        return None
    seen = set(tokens(text))
    numbers = [word for word in words if any(c.isdigit() for c in word)]
    others = [word for word in words if word not in numbers]
    if any(number not in seen for number in numbers):
        return None
    share = sum(word in seen for word in others) / len(others) if others else 1.0
    return share if share * 3 >= 2 else None


def supported(answer: str, printed: str) -> bool:
    """Whether `answer` appears in `printed`; a long answer (a summary, a list) or one with no
    words to check counts as supported."""
    if len(answer) > LONG_ANSWER or not content_words(answer):
        return True
    return support(answer, printed) is not None
