"""Needle families (RULER style): `niah`, `niah-paraphrase` and `multi-needle`.

`niah` plants "The special magic number for <key> is: <value>." and asks for it in the same
words. `niah-paraphrase` plants a plain fact and asks for it with no content word in common
with the fact's sentence (`content_words` is the check), so matching the question's words
finds nothing. `multi-needle` plants several values for one key and asks for all of them.
The value of each needle occurs exactly once in the text, by construction and by check.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from rlm_cli.bench.tasks.base import INPUT_FILE, Task, size_label
from rlm_cli.bench.tasks.filler import haystack, plant

KEY_ADJ = "amber brisk calm dusty eager faint gentle humble icy jolly keen lucky misty noble proud rapid tidy vivid witty".split()
KEY_NOUN = "otter pine comet violin bridge tulip rocket pebble castle orchid compass parrot badger acorn kettle".split()

STOPWORDS = frozenset(
    "a an the is are was were be been being of for to in on at by with from as and or but not no "
    "what which who whom whose when where why how does do did done has have had will would can could "
    "should must may might this that these those it its our their his her my your i we you they he she "
    "there here than then so if into onto over under up down out about any all each every one some "
    "number give tell name mentioned text".split()
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of three letters or more that are not stop words, a final s dropped."""
    words = re.findall(r"[a-z]{3,}", text.lower())
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words if w not in STOPWORDS}


@dataclass(frozen=True)
class Paraphrase:
    fact: str  # with {v}
    question: str
    value: Callable[[random.Random], str]


CITIES = ("Lisbon", "Tallinn", "Valparaiso", "Kyoto", "Marrakesh", "Reykjavik", "Ljubljana", "Cartagena")
CHEFS = ("Aurelio Bianchi", "Ngozi Okafor", "Sven Lindqvist", "Mei Tanaka", "Rafael Ortega")
COLOURS = ("turquoise", "vermilion", "chartreuse", "magenta", "ochre", "indigo")


def _digits(n: int) -> Callable[[random.Random], str]:
    return lambda rng: str(rng.randint(10 ** (n - 1), 10**n - 1))


PARAPHRASES = (
    Paraphrase("The spare server can be reached at 10.{v}.", "What network address does the backup host use?",
               lambda rng: f"{rng.randint(2, 9)}.{rng.randint(2, 99)}.{rng.randint(11, 250)}"),
    Paraphrase("Our quarterly offsite will take place in {v}.", "In which city is the team retreat being held this season?",
               lambda rng: rng.choice(CITIES)),
    Paraphrase("Dinner at the gala was cooked by chef {v}.", "Who prepared the food for the banquet?",
               lambda rng: rng.choice(CHEFS)),
    Paraphrase("The vintage car was sold for {v} dollars.", "What price did the old automobile fetch?", _digits(5)),
    Paraphrase("Deployment of the mobile app is scheduled for 2027-{v}.", "On what date does the phone application go live?",
               lambda rng: f"{rng.randint(1, 12):02d}-{rng.randint(10, 28)}"),
    Paraphrase("The lab freezer's service contract is FRZ-{v}.", "Which agreement code covers maintenance of laboratory cold storage?",
               _digits(5)),
    Paraphrase("The founder's favourite colour is {v}.", "Which hue does the company's creator like most?",
               lambda rng: rng.choice(COLOURS)),
    Paraphrase("The ferry to the island departs at {v}.", "When does the boat to the isle leave?",
               lambda rng: f"{rng.randint(5, 11)}:{rng.choice(('05', '15', '25', '35', '45', '55'))} pm"),
    Paraphrase("Invoices are approved by the clerk whose badge reads {v}.", "Which staff identifier belongs to the person who signs off bills?",
               lambda rng: f"EMP-{rng.randint(1000, 9999)}"),
    Paraphrase("Parcels for the warehouse go to dock D-{v}.", "Where should deliveries for the storage depot be unloaded?",
               _digits(2)),
)


def _kind(index: int) -> str:
    return "prose" if index % 2 == 0 else "log"


def _text(rng: random.Random, size: int, kind: str, sentences: list[str], values: list[str]) -> str:
    """Filler of about `size` characters with the sentences planted, each value occurring once."""
    budget = max(size - sum(len(s) + 1 for s in sentences), 200)
    for _ in range(50):
        lines = plant(rng, haystack(rng, budget, kind), sentences, kind)
        text = "\n".join(lines) + "\n"
        if all(text.count(value) == 1 for value in values):
            return text
    raise RuntimeError("could not plant unique values")  # a bug in the vocabularies, not bad luck


def _key(rng: random.Random) -> str:
    return f"{rng.choice(KEY_ADJ)}-{rng.choice(KEY_NOUN)}"


def _magic(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def niah(size: int, seed: int, index: int) -> Task:
    rng = random.Random(f"niah:{size}:{seed}:{index}")
    key, value = _key(rng), _magic(rng)
    text = _text(rng, size, _kind(index), [f"The special magic number for {key} is: {value}."], [value])
    return Task(f"niah-{size_label(size)}-s{seed}-{index}", "niah", size, seed,
                f"What is the special magic number for {key} mentioned in the text?", value, "exact",
                files={INPUT_FILE: text}, meta={"filler": _kind(index)})


def niah_paraphrase(size: int, seed: int, index: int) -> Task:
    rng = random.Random(f"niah-paraphrase:{size}:{seed}:{index}")
    template = PARAPHRASES[rng.randrange(len(PARAPHRASES))]
    raw = template.value(rng)
    fact = template.fact.format(v=raw)
    value = re.search(r"(\S*" + re.escape(raw) + r")", fact).group(1).rstrip(".")  # type: ignore[union-attr]
    text = _text(rng, size, _kind(index), [fact], [value])
    return Task(f"niah-paraphrase-{size_label(size)}-s{seed}-{index}", "niah-paraphrase", size, seed,
                template.question, value, "exact", files={INPUT_FILE: text},
                meta={"filler": _kind(index), "fact": fact})


def multi_needle(size: int, seed: int, index: int) -> Task:
    rng = random.Random(f"multi-needle:{size}:{seed}:{index}")
    key = _key(rng)
    values: list[str] = []
    while len(values) < rng.randint(3, 5) or len(values) < 3:
        value = _magic(rng)
        if value not in values:
            values.append(value)
    sentences = [f"One of the special magic numbers for {key} is: {v}." for v in values]
    text = _text(rng, size, _kind(index), sentences, values)
    return Task(f"multi-needle-{size_label(size)}-s{seed}-{index}", "multi-needle", size, seed,
                f"What are all the special magic numbers for {key} mentioned in the text? List every one.",
                values, "recall", files={INPUT_FILE: text}, meta={"filler": _kind(index), "needles": len(values)})
