"""The scoring rules, as the benchmarks they come from publish them; each maps (answer, gold) to 0..1.

- `exact` (RULER's string match): the gold string occurs in the answer, case and whitespace
  ignored, not inside a longer word or number (so "1234" does not match "91234").
- `recall`: the share of the gold strings that occur in the answer (RULER multi-value).
- `oolong`: OOLONG's numeric rule, 0.75 ** |answer - gold|, on the first number in the answer.
- `label`: OOLONG's exact label: the answer names the gold label and no other label of the task.
- `pair_f1`: F1 over the unordered pairs of ids in the answer (OOLONG-Pairs, as the paper scores it).
- `set_f1`: F1 over a set of names; with a `universe` in the gold, the answer's items are the
  universe's names it mentions, else its comma- or line-separated items.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

_WORD = r"[A-Za-z0-9_]"


def normalise(text: str) -> str:
    return " ".join(str(text).lower().split())


def contains(answer: str, gold: str) -> bool:
    """Whether `gold` occurs in `answer` as a whole (case and runs of whitespace ignored)."""
    target = normalise(gold)
    if not target:
        return False
    pattern = (r"(?<!" + _WORD + ")" if re.match(_WORD, target[0]) else "") + re.escape(target)
    pattern += r"(?!" + _WORD + ")" if re.match(_WORD, target[-1]) else ""
    return re.search(pattern, normalise(answer)) is not None


def exact(answer: str, gold: Any) -> float:
    return 1.0 if contains(answer, str(gold)) else 0.0


def recall(answer: str, gold: Any) -> float:
    items = [str(g) for g in gold]
    return sum(contains(answer, g) for g in items) / len(items) if items else 1.0


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def first_number(answer: str) -> float | None:
    match = _NUMBER.search(answer.replace(",", ""))
    return float(match.group(0)) if match else None


def oolong(answer: str, gold: Any) -> float:
    value = first_number(answer)
    return 0.0 if value is None else 0.75 ** abs(value - float(gold))


def label(answer: str, gold: Any, labels: Iterable[str] = ()) -> float:
    others = [x for x in labels if normalise(x) != normalise(str(gold)) and normalise(x) not in normalise(str(gold))]
    if not contains(answer, str(gold)):
        return 0.0
    return 0.0 if any(contains(answer, x) for x in others) else 1.0


def _f1(predicted: set[Any], gold: set[Any]) -> float:
    if not predicted and not gold:
        return 1.0
    hits = len(predicted & gold)
    if not hits:
        return 0.0
    precision, recall_ = hits / len(predicted), hits / len(gold)
    return 2 * precision * recall_ / (precision + recall_)


_PAIR = re.compile(r"(\d+)\D{1,6}?(\d+)")


def pairs_in(answer: str) -> set[frozenset[str]]:
    """Unordered id pairs: two numbers close together on one line, e.g. (123, 456) or 123-456."""
    found: set[frozenset[str]] = set()
    for line in answer.splitlines():
        for a, b in _PAIR.findall(line):
            if a != b:
                found.add(frozenset((a, b)))
    return found


def pair_f1(answer: str, gold: Any) -> float:
    return _f1(pairs_in(answer), {frozenset(map(str, pair)) for pair in gold})


_QUALIFIER = re.compile(r"\b[A-Za-z_]\w*\.(?=[A-Za-z_])")


def set_f1(answer: str, gold: Any) -> float:
    if isinstance(gold, dict):
        items = {str(g) for g in gold["items"]}
        bare = _QUALIFIER.sub("", answer)  # `Console.print` names the method, not the class too
        predicted = {name for name in map(str, gold.get("universe", items)) if contains(bare, name)}
        return _f1(predicted, items)
    items = {normalise(str(g)) for g in gold}
    predicted = {normalise(p).strip(" .`'\"") for p in re.split(r"[,\n;]|\band\b", answer)}
    return _f1(predicted - {""}, items)


RULES: dict[str, Callable[[str, Any], float]] = {
    "exact": exact,
    "recall": recall,
    "oolong": oolong,
    "label": label,
    "pair_f1": pair_f1,
    "set_f1": set_f1,
}


def score(rule: str, answer: str | None, gold: Any, labels: Iterable[str] = ()) -> float:
    """The task's score for `answer` (no answer scores 0)."""
    if answer is None:
        return 0.0
    if rule == "label":
        return label(answer, gold, labels)
    return RULES[rule](answer, gold)
