"""The bench's scoring rules on hand-made answers."""

from __future__ import annotations

import pytest

from rlm_cli.bench.scoring import pairs_in, score

LABELS = ("entity", "location", "human being", "numeric value")


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("The number is 4417290.", "4417290", 1.0),
        ("4417290", "4417290", 1.0),
        ("It is 94417290", "4417290", 0.0),  # not inside a longer number
        ("the code: frz-12345!", "FRZ-12345", 1.0),  # case ignored, punctuation around is fine
        ("Ngozi   Okafor cooked", "Ngozi Okafor", 1.0),
        ("rich/console.py", "rich/console.py", 1.0),
        ("console.py", "rich/console.py", 0.0),
        ("Console.print_json", "print_json", 1.0),
        ("print_json_data", "print_json", 0.0),
        ("", "x", 0.0),
    ],
)
def test_exact_is_a_whole_string_match(answer: str, gold: str, expected: float) -> None:
    assert score("exact", answer, gold) == expected


def test_recall_counts_the_share_of_values_found() -> None:
    gold = ["1111111", "2222222", "3333333", "4444444"]
    assert score("recall", "1111111, 3333333 and 4444444", gold) == 0.75
    assert score("recall", "none", gold) == 0.0
    assert score("recall", None, gold) == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("12", 1.0), ("There are 14 such lines.", 0.75**2), ("9", 0.75**3), ("1,012", 0.75**1000), ("no idea", 0.0)],
)
def test_oolong_numbers_score_three_quarters_to_the_error(answer: str, expected: float) -> None:
    assert score("oolong", answer, 12) == pytest.approx(expected)


def test_a_label_must_be_named_alone() -> None:
    assert score("label", "human being", "human being", LABELS) == 1.0
    assert score("label", "The most common category is 'Location'.", "location", LABELS) == 1.0
    assert score("label", "location or entity", "location", LABELS) == 0.0
    assert score("label", "entity", "location", LABELS) == 0.0


def test_pair_f1_reads_unordered_pairs_in_any_common_notation() -> None:
    gold = [["10001", "10002"], ["10001", "10003"], ["10002", "10003"]]
    assert pairs_in("(10002, 10001)\n10001-10003") == {frozenset(("10001", "10002")), frozenset(("10001", "10003"))}
    assert score("pair_f1", "(10001, 10002)\n(10003, 10002)\n(10001, 10003)", gold) == 1.0
    assert score("pair_f1", "(10001, 10002)\n(10001, 10009)", gold) == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert score("pair_f1", "none", gold) == 0.0
    assert score("pair_f1", "none", []) == 1.0


def test_set_f1_over_names_in_the_universe_or_over_listed_items() -> None:
    gold = {"items": ["render", "export_html"], "universe": ["render", "export_html", "print", "log"]}
    assert score("set_f1", "`render` and `export_html` call it", gold) == 1.0
    assert score("set_f1", "render, print", gold) == 0.5
    assert score("set_f1", "render_lines", gold) == 0.0
    with_class = {**gold, "universe": [*gold["universe"], "Console"]}
    assert score("set_f1", "Console.render, Console.export_html", with_class) == 1.0  # qualnames name the methods
    assert score("set_f1", "alpha, Beta\ngamma.", ["alpha", "beta", "gamma"]) == 1.0
    assert score("set_f1", "alpha and delta", ["alpha", "beta"]) == 0.5
