"""The REPL helpers a small root model uses in one line: context.search, context.around, llm_map.

In-process: a Context built from text, and llm_map handed a fake batched sub-model.
"""

from __future__ import annotations

import re

import pytest

from rlm_cli.sources.context import Context, Passage
from rlm_cli.worker.llm_map import BATCH_CHARS, llm_find, llm_map, parse_numbered


def notes() -> Context:
    lines = [f"Entry {i}: the harbor office reviewed the quarry report as usual." for i in range(300)]
    lines[120] = "Entry 120: the refund for damaged parcels is processed by the returns desk within 5 days."
    lines[200] = "Entry 200: parcels are weighed at the loading dock."
    return Context({"notes.txt": "\n".join(lines) + "\n"})


def test_search_ranks_the_passage_sharing_the_most_and_rarest_words_first() -> None:
    context = notes()
    found = context.search("How are refunds for damaged parcels handled?", k=3, lines=5)
    assert [p.line for p in found[:2]] == [121, 201]  # passages of 5 lines: 121-125 holds line 121
    assert "refund for damaged parcels" in found[0].text and found[0].score > found[1].score
    assert str(found[0]).startswith("notes.txt:121: Entry 120: the refund") and "score" in repr(found[0])
    assert (found[0].line, found[0].end_line) == (121, 125)
    [best] = context.search("How are refunds for damaged parcels handled?", k=1)  # one line by default
    assert (best.line, best.end_line) == (121, 121) and best.text == context.splitlines()[120]
    assert context.search("zebra unicorn") == []


def test_of_lines_sharing_the_same_words_the_one_saying_the_questions_phrase_ranks_first() -> None:
    rows = ["Filler about the harbor office and its quarry report."] * 50
    rows[5] = "A run ended early, and the limit on turns was raised."  # the same words, scattered
    rows[9] = "Not every limit ended a run that day, said the ops team."
    rows[40] = "Code 5: a limit ended the run, and so on."
    context = Context({"doc.md": "\n".join(rows) + "\n"})
    found = context.search("Which code means a limit ended the run?", k=3)
    assert [p.line for p in found] == [41, 10, 6]


def test_search_keeps_to_file_boundaries_and_names_the_file() -> None:
    context = Context({"a.md": "alpha beta\n" * 3, "b.md": "gamma delta\nthe kestrel nests here\n"})
    [best] = context.search("kestrel", k=1)
    assert (best.path, best.line) == ("b.md", 2) and best.text == "the kestrel nests here"


def test_around_numbers_the_lines_near_a_hit_or_a_line_number() -> None:
    context = notes()
    [hit] = context.grep("returns desk")
    shown = context.around(hit, 1, 1)
    assert len(context.around(hit).splitlines()) == 5  # two lines either side by default
    assert shown.splitlines() == [
        "120: Entry 119: the harbor office reviewed the quarry report as usual.",
        "121: Entry 120: the refund for damaged parcels is processed by the returns desk within 5 days.",
        "122: Entry 121: the harbor office reviewed the quarry report as usual.",
    ]
    assert context.around(1, 0, 1).splitlines()[0].startswith("1: Entry 0:")
    [passage] = context.search("returns desk", k=1, lines=5)
    assert [row.split(":")[0] for row in context.around(passage, 1, 1).splitlines()] == [str(n) for n in range(120, 127)]
    wide = Context({"w.txt": "x" * 5_000 + "\nshort\n"})
    assert len(wide.around(2, 1, 0).splitlines()[0]) < 300
    assert context.around(hit, 1, 0, numbered=False).splitlines() == [
        "Entry 119: the harbor office reviewed the quarry report as usual.",
        "Entry 120: the refund for damaged parcels is processed by the returns desk within 5 days.",
    ]
    many = Context({"a.txt": "one\ntwo\n", "b.txt": "three\nfour\n"})
    assert many.around(2, 1, 0, path="b.txt") == "1: three\n2: four"


def test_around_a_list_of_hits_shows_their_windows_in_order_merged_where_they_overlap() -> None:
    context = Context({"a.txt": "".join(f"a{i}\n" for i in range(1, 21)), "b.txt": "b1\nb2\nb3\n"})
    hits = [Passage("b.txt", 2, "b2", 1.0, 2), Passage("a.txt", 15, "a15", 1.0, 15),
            Passage("a.txt", 3, "a3", 1.0, 3), Passage("a.txt", 5, "a5", 1.0, 5)]
    assert context.around(hits, 1, 1, numbered=False).split("\n--\n") == ["a2\na3\na4\na5\na6", "a14\na15\na16", "b1\nb2\nb3"]
    assert context.around(hits[1:2], 0, 0) == "15: a15"


class Helper:
    """A batched sub-model that answers numbered prompts by rule, and can drop an answer."""

    def __init__(self, drop: int | None = None) -> None:
        self.drop = drop
        self.batches: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.batches.append(prompts)
        replies = []
        for prompt in prompts:
            items = re.findall(r"^(\d+)\. (.*)$", prompt, re.MULTILINE)
            if items:
                replies.append("\n".join(f"{n}: {'yes' if 'refund' in t else 'no'}" for n, t in items
                                         if int(n) != self.drop))
            else:
                inside = prompt.split("<text>", 1)[1]
                replies.append("yes" if "refund" in inside else "no")
        return replies


def test_llm_map_batches_short_items_and_reads_the_answers_back_in_order() -> None:
    lines = notes().splitlines()
    helper = Helper()
    answers = llm_map(helper, "Is this about a refund? Answer yes or no.", lines)
    assert len(answers) == 300 and answers.count("yes") == 1 and answers[120] == "yes"
    [prompts] = helper.batches
    assert 1 < len(prompts) < 300 and all(len(p) < BATCH_CHARS + 500 for p in prompts)


def test_an_answer_missing_from_a_batch_is_asked_again_alone() -> None:
    helper = Helper(drop=2)
    lines = notes().splitlines()[:10]
    lines[1] = "a refund was issued"
    answers = llm_map(helper, "Is this about a refund?", lines)
    assert answers[1] == "yes" and answers.count("yes") == 1
    assert len(helper.batches) == 2 and helper.batches[1] == [helper.batches[1][0]] and "<text>" in helper.batches[1][0]


def test_long_items_go_one_to_a_prompt_and_bad_arguments_say_what_was_meant() -> None:
    helper = Helper()
    pieces = notes().chunks(max_chars=2_000)
    answers = llm_map(helper, "Does this mention a refund?", pieces)
    assert len(helper.batches[0]) == len(pieces) == len(answers) and answers.count("yes") == 1
    with pytest.raises(TypeError, match="not one str"):
        llm_map(helper, "x", "a string")
    assert parse_numbered("1: a\n2. b\n[3] c\n9: out of range\n1: again", 3) == {1: "a", 2: "b", 3: "c"}


def test_llm_find_puts_the_answer_whose_line_shares_the_questions_words_first() -> None:
    """A rare answer on an unrelated line ('429') comes after the one its line says plainly ('5')."""
    rows = [f"Entry {i}: exit code 5 is listed in the table." for i in range(40)]
    rows[10] = "The limiter takes one slot away per 429 answer."
    rows[30] = "Exit code 5 means a limit ended the run."
    context = Context({"doc.md": "\n".join(rows) + "\n"})
    pieces = context.chunks(max_chars=700)

    def helper(prompts: list[str]) -> list[str]:
        texts = [p.split("<text>", 1)[1] for p in prompts]  # pieces this long go one to a prompt
        return ["429" if "per 429" in t else "5" if "code 5" in t else "NONE" for t in texts]

    found = llm_find(helper, "Which exit code means a limit ended the run?", pieces)
    assert [str(f) for f in found] == ["5", "429"]
    assert (found[0].line, found[0].text) == (31, "Exit code 5 means a limit ended the run.")


def test_llm_find_names_the_line_of_its_piece_that_says_the_answer_and_how_much_of_the_question_it_shares() -> None:
    """A "5" is on several lines of the piece: the one about the question is the one shown."""
    piece = "Chapter 5, page 5.\nExit code 5 means a limit ended the run.\nSee 5 more.\n"
    [found] = llm_find(lambda prompts: ["5"] * len(prompts), "Which exit code means a limit ended the run?", [piece])
    assert found.text == "Exit code 5 means a limit ended the run." and found.line is None
    assert found.shares == 1.0  # exit, code, means, limit, ended, run
    [other] = llm_find(lambda prompts: ["5"] * len(prompts), "Which exit code means a limit ended the run?", ["See 5 more.\n"])
    assert other.shares == 0.0


def test_llm_find_ranks_a_stated_date_over_the_timestamps_every_log_line_starts_with() -> None:
    """Each timestamp is unique, but all have one shape: the text's scaffolding, not a fact."""
    rows = [f"2026-02-01T20:{i // 60:02d}:{i % 60:02d}.{i:03d}Z INFO [gateway] request {i:05d} ok" for i in range(120)]
    rows[90] = "2026-02-01T21:30:00.000Z INFO [it-desk] note: Deployment of the mobile app is scheduled for 2027-08-16."
    context = Context({"app.log": "\n".join(rows) + "\n"})

    def helper(prompts: list[str]) -> list[str]:
        texts = [p.split("<text>", 1)[1] for p in prompts]
        return ["2027-08-16" if "scheduled for" in t else t.split()[0] for t in texts]  # else the first timestamp

    found = llm_find(helper, "On what date does the phone application go live?", context.chunks(max_chars=1500))
    assert len(found) > 3 and str(found[0]) == "2027-08-16"
    assert found[0].line == 91
