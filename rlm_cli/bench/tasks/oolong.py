"""OOLONG-style families: `oolong` (count or most/least frequent label) and `oolong-pairs`.

Each line is a record `Date: ... || User: <id> || Instance: <a question>`, and each question
belongs to one of six TREC-style categories that no line names: the label is known by
construction (the template that wrote it), so answering needs the meaning of every line, as
in OOLONG-synth. A task of `size` characters has about size / LINE_CHARS lines, so 4k, 16k and
64k are 50, 200 and 800 lines.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

from rlm_cli.bench.tasks.base import INPUT_FILE, Task, size_label

LINE_CHARS = 80

LABELS = ("abbreviation", "entity", "description", "human being", "location", "numeric value")

PEOPLE = ("Ada Lovelace", "Nikola Tesla", "Marie Curie", "Genghis Khan", "Frida Kahlo", "Alan Turing",
          "Cleopatra", "Leonardo da Vinci", "Jane Austen", "Nelson Mandela", "Rosalind Franklin")
PLACES = ("Peru", "the Sahara", "Lake Baikal", "Mount Kilimanjaro", "Iceland", "the Amazon", "Mongolia",
          "Tasmania", "the Danube", "Patagonia", "Borneo", "the Alps")
THINGS = ("the telescope", "the bicycle", "penicillin", "the printing press", "the compass", "chess",
          "the violin", "paper money", "the steam engine", "radar", "the zipper", "coffee")
ANIMALS = ("the platypus", "an octopus", "the axolotl", "a cheetah", "the narwhal", "a honeybee", "the gecko")
ACRONYMS = ("NASA", "UNESCO", "RADAR", "SCUBA", "LASER", "NATO", "HTML", "GDP", "DNA", "OPEC", "FIFA", "CAPTCHA")
ORGS = ("the World Health Organization", "the International Space Station", "the European Union",
        "the Federal Reserve", "the Royal Society")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "abbreviation": ("What does {acr} stand for?", "What is the full form of {acr}?",
                     "How is {org} usually abbreviated?", "What is {acr} short for?"),
    "entity": ("What kind of animal is {animal}?", "Which instrument did {person} play?",
               "What was {thing} originally made from?", "What food does {animal} eat?",
               "Which language did {person} write in?"),
    "description": ("Why is {thing} important?", "How does {thing} work?", "What is the meaning of the word {word}?",
                    "Why did {person} become famous?", "What causes the climate of {place}?"),
    "human being": ("Who invented {thing}?", "Who was the first person to cross {place}?",
                    "Which scientist worked with {person}?", "Who painted the portrait of {person}?",
                    "Who led the first expedition to {place}?"),
    "location": ("Where is {place}?", "In which country was {person} born?", "Where was {thing} first used?",
                 "Which continent contains {place}?", "Where does {animal} live?"),
    "numeric value": ("How many people live in {place}?", "When was {thing} invented?", "How old was {person} in 1900?",
                      "How tall is {place}?", "What year did {person} die?", "How much does {animal} weigh?"),
}
WORDS = ("serendipity", "melancholy", "ephemeral", "ubiquitous", "nostalgia", "quixotic", "solace")


def _instance(rng: random.Random, label: str) -> str:
    template = rng.choice(TEMPLATES[label])
    return template.format(acr=rng.choice(ACRONYMS), org=rng.choice(ORGS), animal=rng.choice(ANIMALS),
                           person=rng.choice(PEOPLE), thing=rng.choice(THINGS), place=rng.choice(PLACES),
                           word=rng.choice(WORDS))


def _line(rng: random.Random, user: int, label: str) -> str:
    date = f"{rng.choice(('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'))} " \
           f"{rng.randint(1, 28):02d}, {rng.randint(2019, 2024)}"
    return f"Date: {date} || User: {user} || Instance: {_instance(rng, label)}"


def _distinct_counts(rng: random.Random, lines: int) -> dict[str, int]:
    """A label -> count split of `lines` (at least 21) with all counts different, so the most
    and least common labels are unique; random shares, or evenly spaced ones when those tie."""
    for _ in range(200):
        weights = [rng.uniform(0.3, 1.0) for _ in LABELS]
        counts = [max(1, round(lines * w / sum(weights))) for w in weights]
        counts[counts.index(max(counts))] += lines - sum(counts)
        if len(set(counts)) == len(counts) and min(counts) >= 1:
            return dict(zip(LABELS, counts))
    base = (lines - 15) // len(LABELS)
    counts = [base + i for i in range(len(LABELS))]
    counts[-1] += lines - sum(counts)
    rng.shuffle(counts)
    return dict(zip(LABELS, counts))


PREAMBLE = (
    "Each line below is a record with a date, a user id and an instance. Every instance is a question "
    "that belongs to exactly one of these categories: " + ", ".join(LABELS) + ". "
)


def oolong(size: int, seed: int, index: int) -> Task:
    rng = random.Random(f"oolong:{size}:{seed}:{index}")
    n = max(30, round(size / LINE_CHARS))
    counts = _distinct_counts(rng, n)
    labels = [label for label, count in counts.items() for _ in range(count)]
    rng.shuffle(labels)
    users = [rng.randint(10_000, 99_999) for _ in range(max(5, n // 10))]
    text = "\n".join(_line(rng, rng.choice(users), label) for label in labels) + "\n"
    kind = ("count", "most", "least")[index % 3]
    if kind == "count":
        label = rng.choice(LABELS)
        question = f"{PREAMBLE}How many instances are labelled '{label}'? Answer with a number."
        gold: int | str = counts[label]
        rule = "oolong"
    else:
        pick = max if kind == "most" else min
        word = "most" if kind == "most" else "least"
        question = f"{PREAMBLE}Which category is the {word} common among the instances? Answer with the category."
        gold, rule = pick(counts, key=counts.__getitem__), "label"
    return Task(f"oolong-{size_label(size)}-s{seed}-{index}", "oolong", size, seed, question, gold, rule,
                files={INPUT_FILE: text}, meta={"kind": kind, "lines": n, "counts": counts, "choices": list(LABELS)})


def oolong_pairs(size: int, seed: int, index: int) -> Task:
    rng = random.Random(f"oolong-pairs:{size}:{seed}:{index}")
    n = max(20, round(size / LINE_CHARS))
    users = sorted(rng.sample(range(10_000, 99_999), min(16, max(6, n // 8))))
    # Each user asks only from a few categories, so a condition holds for some users, not all.
    allowed = {u: rng.sample(LABELS, rng.randint(1, 3)) for u in users}
    records = [(u, rng.choice(allowed[u])) for u in users for _ in range(2)]  # every user appears
    records += [(u, rng.choice(allowed[u])) for u in (rng.choice(users) for _ in range(n - len(records)))]
    rng.shuffle(records)
    text = "\n".join(_line(rng, u, label) for u, label in records) + "\n"
    seen: dict[int, set[str]] = {u: set() for u in users}
    for u, label in records:
        seen[u].add(label)
    if index % 2 == 0:
        held = Counter(label for u in users for label in seen[u])
        target = rng.choice([label for label in LABELS if held[label] >= 2] or [held.most_common(1)[0][0]])
        condition = f"both users have at least one instance labelled '{target}'"
        good = [u for u in users if target in seen[u]]
        pairs = [[a, b] for a, b in itertools.combinations(good, 2)]
    else:
        options = list(itertools.combinations(LABELS, 2))
        rng.shuffle(options)
        for first, second in options:  # the first pair of labels that some pair of users meets
            pairs = [[a, b] for a, b in itertools.combinations(users, 2)
                     if (first in seen[a] and second in seen[b]) or (second in seen[a] and first in seen[b])]
            if pairs:
                break
        condition = (f"one user has at least one instance labelled '{first}' and the other has at least one "
                     f"labelled '{second}'")
    question = (f"{PREAMBLE}List every pair of user ids such that {condition}. Write each pair once, "
                "as (smaller id, larger id), one pair per line.")
    return Task(f"oolong-pairs-{size_label(size)}-s{seed}-{index}", "oolong-pairs", size, seed, question,
                [[str(a), str(b)] for a, b in pairs], "pair_f1", files={INPUT_FILE: text},
                meta={"lines": len(records), "users": len(users),
                      "labels": {str(u): sorted(seen[u]) for u in users}})
