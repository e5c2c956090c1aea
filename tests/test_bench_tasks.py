"""The bench's task generators: deterministic from the seed, and their gold right by construction.

Gold answers are re-derived here by a different route than the generator's (reading the text
back, matching the templates, grepping the code), so a generator that plants one thing and
records another fails.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import pytest

from rlm_cli.bench.tasks import FAMILIES, generate, parse_sizes, size_label
from rlm_cli.bench.tasks.base import INPUT_FILE, Task
from rlm_cli.bench.tasks.needles import PARAPHRASES, content_words
from rlm_cli.bench.tasks.oolong import LABELS, TEMPLATES
from rlm_cli.bench.tasks.user import read_tasks
from rlm_cli.errors import InputError, UsageError

SIZES = (4_000, 30_000)


def digest(task: Task) -> str:
    assert task.files is not None
    h = hashlib.sha256()
    for path, text in task.files.items():
        h.update(path.encode() + b"\0" + text.encode())
    return h.hexdigest()


def text_of(task: Task) -> str:
    assert task.files is not None
    return task.files[INPUT_FILE]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_same_seed_gives_the_same_tasks_and_another_seed_others(family: str) -> None:
    first = generate([family], SIZES, [5], 2)
    again = generate([family], SIZES, [5], 2)
    other = generate([family], SIZES, [6], 2)
    assert [(t.id, t.question, t.gold, digest(t)) for t in first] == [(t.id, t.question, t.gold, digest(t)) for t in again]
    assert [digest(t) for t in first] != [digest(t) for t in other]
    assert [t.id for t in first] == [f"{family}-{size_label(s)}-s5-{i}" for s in SIZES for i in range(2)]


@pytest.mark.parametrize("family", ["niah", "niah-paraphrase", "multi-needle", "oolong", "oolong-pairs"])
def test_generated_text_is_about_the_size_asked_up_to_two_million(family: str) -> None:
    for task in generate([family], (4_000, 2_000_000), [1], 1):
        assert 0.9 * task.size <= task.chars <= 1.1 * task.size


def test_niah_plants_its_value_once_beside_the_key_the_question_names() -> None:
    for task in generate(["niah"], SIZES, [1, 2], 3):
        key = re.search(r"number for (\S+) mentioned", task.question).group(1)  # type: ignore[union-attr]
        text = text_of(task)
        assert text.count(task.gold) == 1
        assert f"The special magic number for {key} is: {task.gold}." in text


def test_paraphrased_questions_share_no_content_word_with_the_fact() -> None:
    for template in PARAPHRASES:
        assert content_words(template.question).isdisjoint(content_words(template.fact)), template
    for task in generate(["niah-paraphrase"], SIZES, [1, 2, 3], 4):
        fact = task.meta["fact"]
        assert task.gold in fact and text_of(task).count(fact) == 1 and text_of(task).count(task.gold) == 1
        assert content_words(task.question).isdisjoint(content_words(fact))


def test_multi_needle_gold_is_every_value_planted_for_the_key() -> None:
    for task in generate(["multi-needle"], SIZES, [1, 2], 3):
        key = re.search(r"numbers for (\S+) mentioned", task.question).group(1)  # type: ignore[union-attr]
        found = re.findall(rf"magic numbers for {key} is: (\d+)\.", text_of(task))
        assert sorted(found) == sorted(task.gold) and len(found) >= 3


def _label_of(instance: str) -> str:
    """The category of an instance, recovered by matching it against every template."""
    matches = {label for label, templates in TEMPLATES.items() for t in templates
               if re.fullmatch(re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)), instance)}
    assert len(matches) == 1, (instance, matches)
    return matches.pop()


def _records(task: Task) -> list[tuple[str, str]]:
    rows = re.findall(r"^Date: .+? \|\| User: (\d+) \|\| Instance: (.+)$", text_of(task), re.MULTILINE)
    assert len(rows) == len(text_of(task).splitlines())
    return [(user, _label_of(instance)) for user, instance in rows]


def test_oolong_gold_matches_the_labels_read_back_from_the_lines() -> None:
    kinds = set()
    for task in generate(["oolong"], (1_000, 4_000, 16_000, 64_000), [1, 2], 3):
        counts = {label: 0 for label in LABELS}
        for _, label in _records(task):
            counts[label] += 1
        assert sum(counts.values()) == task.meta["lines"] == max(30, round(task.size / 80))
        kind = task.meta["kind"]
        kinds.add(kind)
        if kind == "count":
            label = re.search(r"labelled '([^']+)'", task.question).group(1)  # type: ignore[union-attr]
            assert task.gold == counts[label] and task.rule == "oolong"
        else:
            ordered = sorted(counts.values())
            assert len(set(ordered)) == len(ordered)  # a unique most and least common label
            assert counts[task.gold] == (ordered[-1] if kind == "most" else ordered[0]) and task.rule == "label"
        assert not any(label in text_of(task) for label in ("human being", "numeric value", "abbreviation"))
    assert kinds == {"count", "most", "least"}


def test_oolong_pairs_gold_is_every_pair_meeting_the_condition() -> None:
    for task in generate(["oolong-pairs"], SIZES, [1, 2, 3], 2):
        held: dict[str, set[str]] = {}
        for user, label in _records(task):
            held.setdefault(user, set()).add(label)
        wanted = re.findall(r"labelled '([^']+)'", task.question)
        if "both users" in task.question:
            good = lambda a, b: wanted[0] in held[a] and wanted[0] in held[b]  # noqa: E731
        else:
            x, y = wanted
            good = lambda a, b: (x in held[a] and y in held[b]) or (y in held[a] and x in held[b])  # noqa: E731
        expected = sorted([a, b] for a, b in itertools.combinations(sorted(held), 2) if good(a, b))
        assert sorted(task.gold) == expected and expected


def test_code_gold_comes_from_the_package_source() -> None:
    kinds = set()
    for task in generate(["code"], (4_000, 60_000), [1, 2], 3):
        files = dict(task.files or {})
        kinds.add(task.meta["kind"])
        if task.meta["kind"] == "where":
            name = re.search(r"`(\w+)`", task.question).group(1)  # type: ignore[union-attr]
            defining = [p for p, text in files.items() if re.search(rf"^\s*(async def|def|class) {name}\b", text, re.M)]
            assert defining == [task.gold]
        elif task.meta["kind"] == "definition":
            doc = re.search(r'does the following: "(.+)"\?', task.question).group(1)  # type: ignore[union-attr]
            text = files[task.meta["path"]]
            at = text.index(doc)
            assert re.findall(r"def (\w+)", text[:at])[-1] == task.gold
        else:
            name = re.search(r"`(\w+)`", task.question).group(1)  # type: ignore[union-attr]
            assert len(task.gold["items"]) >= 2 and set(task.gold["items"]) <= set(task.gold["universe"])
            for caller in task.gold["items"]:
                assert any(re.search(rf"def {caller}\(.*?(\.|\b){name}\(", t, re.S) for t in files.values())
    assert kinds == {"where", "definition", "callers"}


def test_a_tasks_file_becomes_tasks_and_bad_lines_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("The answer is 42.\n")
    good = tmp_path / "tasks.jsonl"
    good.write_text('{"source": "doc.txt", "question": "What is it?", "gold": "42", "rule": "exact", "id": "mine"}\n\n')
    [task] = read_tasks(good)
    assert (task.id, task.family, task.source, task.size) == ("mine", "tasks", str(tmp_path / "doc.txt"), 18)
    for line, message in (("{", "not JSON"), ('{"source": "doc.txt"}', "missing question, gold, rule"),
                          ('{"source": "doc.txt", "question": "q", "gold": 1, "rule": "fuzzy"}', "unknown rule")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(line + "\n")
        with pytest.raises(UsageError, match=message):
            read_tasks(bad)
    bad.write_text('{"source": "nowhere.txt", "question": "q", "gold": 1, "rule": "exact"}\n')
    with pytest.raises(InputError, match="does not exist"):
        read_tasks(bad)


def test_sizes_parse_in_decimal_units_and_reject_nonsense() -> None:
    assert parse_sizes("4k, 64k,2M,1.5k") == (4_000, 64_000, 2_000_000, 1_500)
    assert [size_label(s) for s in (4_000, 64_000, 2_000_000, 1_500)] == ["4k", "64k", "2M", "1.5k"]
    for bad in ("4x", "", "12"):
        with pytest.raises(UsageError):
            parse_sizes(bad)
    with pytest.raises(UsageError, match="unknown nope"):
        generate(["nope"], SIZES, [1], 1)
