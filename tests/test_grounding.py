"""How the loop steers a small root model: after a cell that found nothing, and at a FINAL that
nothing printed supports (loop/grounding.py), in process with a fake model and the real worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_api import ListSink, Models, Scripted, repl, rlm_with

from rlm_cli.api import AskRequest, Inputs, Limits, ModelFlags
from rlm_cli.events import Cell
from rlm_cli.loop.grounding import found_nothing, not_found, support, supported

SMALL_ROOT = "qwen2.5-1.5b"  # a name the small profile is chosen for


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("alpha\nthe code is 7481\nomega\n")
    return path


def ask(notes: Path, root: str = SMALL_ROOT) -> AskRequest:
    return AskRequest(Inputs((str(notes),)), "What is the code?", ModelFlags(root, "sub"), Limits(max_iterations=6))


def code_repo(tmp_path: Path, name: str, source: str) -> Path:
    """A directory holding one Python file: a context with a code graph."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / name).write_text(source)
    return repo


def test_a_final_nothing_printed_shows_gets_one_more_look(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [
        repl("x = 1"),
        repl("FINAL('9999')"),
        repl("print(context.grep('code is')[0].text)\nFINAL('7481')"),
    ])
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes))

    assert (result.answer, result.status, result.iterations) == ("7481", "ok", 3)
    assert "FINAL('9999'), but nothing your code printed shows that answer" in root.seen[2][-1]["content"]


def test_a_final_the_outputs_support_ends_the_run_at_once(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("print(context.grep('code is')[0].text)"), repl("FINAL('7481')")])
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes))
    assert (result.answer, result.iterations) == ("7481", 2)


def test_the_second_look_is_given_once_and_only_to_grounded_profiles(notes: Path, tmp_path: Path) -> None:
    small = Scripted(SMALL_ROOT, [repl("FINAL('9999')"), repl("FINAL('1234')")])
    assert rlm_with(Models(small), ListSink(), tmp_path).ask(ask(notes)).answer == "1234"
    frontier = Scripted("gpt-4o", [repl("FINAL('9999')")])
    assert rlm_with(Models(frontier), ListSink(), tmp_path).ask(ask(notes, "gpt-4o")).answer == "9999"


def code_helper(prompt: str) -> str:
    """A sub-model that finds the code in a piece holding it and says NONE elsewhere."""
    return "7481" if "the code is 7481" in prompt else "NONE"


def test_a_cell_that_found_nothing_is_followed_by_the_loops_scan_of_every_piece_then_by_other_words(
    notes: Path, tmp_path: Path
) -> None:
    root = Scripted(SMALL_ROOT, [
        repl("print(context.grep('password'))"),
        repl("print([])"),
        repl("print(context.grep('code is')[0].text)\nFINAL('7481')"),
    ])
    sink = ListSink()
    result = rlm_with(Models(root, Scripted("sub", answer=code_helper)), sink, tmp_path).ask(ask(notes))

    scan = root.seen[1][-1]["content"]
    assert "That found nothing" in scan and "the helper was asked about every piece" in scan
    assert "found = llm_find('What is the code?', context.chunks(max_chars=" in scan
    assert "'7481' (line 2: the code is 7481)" in scan  # the loop ran the scan and shows its answers
    assert "sub-calls used: 2" in scan  # the budget line counts the opening's reading and the scan
    assert [c.iteration for c in sink.of(Cell) if "context.chunks" in c.code] == [1]
    assert "That found nothing either" in root.seen[2][-1]["content"]  # the scan runs once a run
    assert result.iterations == 3


def test_a_scan_that_finds_nothing_says_so(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("print([])"), repl("FINAL('unknown')")])
    rlm_with(Models(root, Scripted("sub", answer=lambda prompt: "NONE")), ListSink(), tmp_path).ask(ask(notes))
    assert "asked about every piece of the text, found no answer either" in root.seen[1][-1]["content"]


def test_not_found_before_any_scan_is_sent_to_scan(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("FINAL('not found')"), repl("FINAL('still not found')")])
    result = rlm_with(Models(root, Scripted("sub", answer=code_helper)), ListSink(), tmp_path).ask(ask(notes))

    assert "did not end the run: nothing was found yet" in root.seen[1][-1]["content"]
    assert "'7481' (line 2" in root.seen[1][-1]["content"]
    assert (result.answer, result.iterations) == ("still not found", 2)


@pytest.mark.parametrize(
    ("output", "nothing"),
    [("(no output)", True), ("NONE", True), ("[]", True), ("['NONE', 'NONE']", True), ("0", True),
     ("7481", False), ("the code is 7481", False)],
)
def test_found_nothing(output: str, nothing: bool) -> None:
    assert found_nothing(output) is nothing


def test_support_needs_every_number_and_most_words() -> None:
    assert supported("2027-06-20", "is scheduled for 2027-06-20.")
    assert supported("chef Ngozi Okafor", "cooked by chef Ngozi Okafor at the gala")
    assert not supported("exit code 3", "5 | a limit ended the run")
    assert not supported("Lisbon", "the offsite is in Kyoto")
    assert not_found("The text does not say; not mentioned.") and not not_found("7481")
    assert support("chef Ngozi Okafor", "chef Ngozi Okafor cooked") == 1.0
    assert support("chef Ngozi Adeyemi", "chef Ngozi Okafor cooked") == pytest.approx(2 / 3)
    assert support("The new intern prepared the food", "The new intern mapped the fern") is None


def test_a_small_model_first_sees_what_the_opening_search_found(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("FINAL('7481')")])
    sink = ListSink()
    result = rlm_with(Models(root), sink, tmp_path).ask(ask(notes))

    opening = sink.of(Cell)[0]
    assert opening.iteration == 0 and "context.search('What is the code?'" in opening.code
    assert "2: the code is 7481" in root.seen[0][-1]["content"]  # numbered lines around the passage
    assert (result.answer, result.iterations) == ("7481", 1)  # the answer it showed is supported
    frontier = Scripted("gpt-4o", [repl("FINAL('7481')")])
    frontier_sink = ListSink()
    rlm_with(Models(frontier), frontier_sink, tmp_path).ask(ask(notes, "gpt-4o"))
    assert [c.iteration for c in frontier_sink.of(Cell)] == [1]


def test_a_question_asking_for_every_value_is_shown_a_final_holding_them_all(notes: Path, tmp_path: Path) -> None:
    unread = Scripted("sub", answer=lambda prompt: "NONE")  # no reading, whose answer would be the example
    every = Scripted(SMALL_ROOT, [repl("FINAL('7481')")])
    request = AskRequest(Inputs((str(notes),)), "List every code in the notes.", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(every, unread), ListSink(), tmp_path).ask(request)
    assert 'FINAL("first answer, second answer, third answer")' in every.seen[0][-1]["content"]
    one = Scripted(SMALL_ROOT, [repl("FINAL('7481')")])
    rlm_with(Models(one, unread), ListSink(), tmp_path).ask(ask(notes))
    assert 'FINAL("the answer")' in one.seen[0][-1]["content"] and "second answer" not in one.seen[0][-1]["content"]


def test_a_count_question_gets_the_block_that_judges_every_line_and_no_search(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("FINAL('0')")])
    sink = ListSink()
    request = AskRequest(Inputs((str(notes),)), "How many lines name a Greek letter?", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(root), sink, tmp_path).ask(request)

    first = root.seen[0][-1]["content"]
    assert "answers = llm_map(instruction, lines)" in first and "How many lines name a Greek letter?" in first
    assert "Does this line count toward the answer?" in first
    assert sink.of(Cell)[0].iteration == 1  # the opening search did not run


@pytest.mark.parametrize("question, judged", [
    ("What is the number of lines naming a Greek letter?", True),
    ("Which line turns a letter into a number of bytes?", False),  # "a number of": not a count
])
def test_only_a_question_asking_for_a_count_gets_the_block_that_judges_every_line(
    notes: Path, tmp_path: Path, question: str, judged: bool
) -> None:
    root = Scripted(SMALL_ROOT, [repl("FINAL('0')")])
    rlm_with(Models(root), ListSink(), tmp_path).ask(AskRequest(Inputs((str(notes),)), question, ModelFlags(SMALL_ROOT, "sub")))
    assert ("answers = llm_map(instruction, lines)" in root.seen[0][-1]["content"]) is judged


def test_over_code_a_count_question_gets_the_opening_not_the_block_that_judges_every_line(tmp_path: Path) -> None:
    """Judging every line of source answers nothing; the code graph counts definitions and calls."""
    repo = code_repo(tmp_path, "tools.py", "def fetch_rows(db):\n    return db.rows\n\n\ndef export(db):\n    return fetch_rows(db)\n")
    root = Scripted(SMALL_ROOT, [repl("FINAL('1')")])
    sink = ListSink()
    request = AskRequest(Inputs((str(repo),)), "How many functions call `fetch_rows`?", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(root), sink, tmp_path).ask(request)

    first = root.seen[0][-1]["content"]
    assert "llm_map(instruction, lines)" not in first and "fetch_rows is called by: export" in first
    assert sink.of(Cell)[0].iteration == 0  # the opening ran


def test_an_opening_search_that_finds_nothing_leads_straight_to_the_scan(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, [repl("FINAL('not found')")])
    request = AskRequest(Inputs((str(notes),)), "Quelle heure est-il?", ModelFlags(SMALL_ROOT, "sub"))
    sink = ListSink()
    rlm_with(Models(root, Scripted("sub", answer=code_helper)), sink, tmp_path).ask(request)

    first = root.seen[0][-1]["content"]
    assert "context.search for the question's words printed nothing" in first
    assert "found = llm_find('Quelle heure est-il?'" in first
    assert [c.iteration for c in sink.of(Cell)] == [0, 0, 1]  # the search and the scan, both the loop's


def test_the_same_reply_without_code_twice_gets_the_answer_now_turn(notes: Path, tmp_path: Path) -> None:
    root = Scripted(SMALL_ROOT, ["I will look.", "I will look.", repl("FINAL('7481')")])
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(ask(notes))

    assert "Reply now with one ```repl block that calls FINAL" in root.seen[2][-1]["content"]
    assert (result.answer, result.status, result.iterations) == ("7481", "ok", 3)


def test_the_scan_keeps_what_its_piece_holds_and_puts_the_rare_answer_first(tmp_path: Path) -> None:
    """llm_find through the real worker, as the loop's scan runs it: a sub-model that answers from
    the everyday words of pieces without the fact, or makes up what no piece holds, is outranked
    by the one stated fact, which `found[0]` then gives."""
    lines = ["A local baker reviewed the reef report while the signal was closed."] * 300
    lines[0] = "The records open here."
    lines[249] = "Dinner at the gala was cooked by chef Aurelio Bianchi."
    path = tmp_path / "story.txt"
    path.write_text("\n".join(lines) + "\n")

    def sub(prompt: str) -> str:
        text = prompt.split("<text>", 1)[1]  # pieces of 2,000 characters go one to a prompt
        if "Aurelio" in text:
            return "Chef Aurelio Bianchi"
        return "Dr. Nobody Smith" if "records open" in text else "The local baker"

    root = Scripted(SMALL_ROOT, [repl("FINAL(found[0])")])
    sink = ListSink()
    request = AskRequest(Inputs((str(path),)), "Who prepared the food for the banquet?", ModelFlags(SMALL_ROOT, "sub"))
    result = rlm_with(Models(root, Scripted("sub", answer=sub)), sink, tmp_path).ask(request)

    [printed] = [c.output for c in sink.of(Cell) if "llm_find" in c.code]  # no word of the question occurs
    assert printed.startswith("'Chef Aurelio Bianchi' (line 250: Dinner at the gala was cooked by chef Aurelio Bianchi.)")
    assert "Nobody" not in printed  # no piece holds it
    assert "'The local baker' (line " in printed  # held by its pieces, but made of everyday words
    assert result.answer == "Chef Aurelio Bianchi"


def test_a_code_question_opens_with_the_definitions_and_callers_of_the_names_it_mentions(tmp_path: Path) -> None:
    repo = code_repo(tmp_path, "tools.py",
        "def fetch_rows(db):\n    return db.rows\n\n\nclass Report:\n    def build(self, db):\n"
        "        return fetch_rows(db)\n\n\ndef export(db):\n    rows = fetch_rows(db)\n    return rows\n"
    )
    search = repl("print(context.search('fetch_rows'))")
    root = Scripted(SMALL_ROOT, [search, search, repl("FINAL('Report.build, export')")])
    sink = ListSink()
    request = AskRequest(Inputs((str(repo),)), "Which functions call `fetch_rows`?", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(root), sink, tmp_path).ask(request)

    assert not [c for c in sink.of(Cell) if "llm_find" in c.code]  # a repeat over code: no scan of file paths
    assert "Reply now with one ```repl block that calls FINAL" in root.seen[2][-1]["content"]
    first = root.seen[0][-1]["content"]
    assert "function fetch_rows is defined in tools.py at line 1" in first
    assert "fetch_rows is called by: Report.build, export" in first
    assert "(in method Report.build, tools.py)" in first  # a passage names the definition it lies in
    plain_text = tmp_path / "plain.txt"
    plain_text.write_text("fetch_rows is a word here\n")
    plain = Scripted(SMALL_ROOT, [repl("FINAL('none')")])
    plain_request = AskRequest(Inputs((str(plain_text),)), "Which functions call `fetch_rows`?", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(plain), ListSink(), tmp_path).ask(plain_request)
    assert "is called by" not in plain.seen[0][-1]["content"]  # no code in the context: the search alone


def test_the_first_turn_shows_the_helpers_reading_of_the_best_passages_and_a_repeat_gets_answer_now_with_it(
    notes: Path, tmp_path: Path
) -> None:
    """The 1.5B root passes over an answer on screen and runs its search again: the first turn
    also shows what the helper read in the question's best passages (one sub-call) and the FINAL
    that takes it; a repeat then gets the answer-now turn with the reading, not a scan."""
    search = repl("print(context.search('alpha omega'))")
    root = Scripted(SMALL_ROOT, [search, search, repl("FINAL('7481')")])
    sub = Scripted("sub", answer=code_helper)
    sink = ListSink()
    result = rlm_with(Models(root, sub), sink, tmp_path).ask(ask(notes))

    first = root.seen[0][-1]["content"]
    assert "The helper read the passages around these lines and answers" in first
    assert "'7481' (its piece: the code is 7481)" in first
    assert "llm_find(question, context.chunks())" not in first  # the 1.5B root ran it after the reading
    assert first.endswith("if the helper's answer above is right, that is:\n```repl\nFINAL('7481')\n```")
    [reading] = [c for c in sink.of(Cell) if "[passages]" in c.code]
    assert reading.iteration == 0 and "2:" not in sub.seen[0][-1]["content"]  # passages go without line numbers
    again = root.seen[2][-1]["content"]
    assert "You keep running code you already ran" in again
    assert "The helper's answer, from the passages that best match the question, was:\n'7481'" in again
    assert again.endswith("```repl\nFINAL('7481')\n```")
    assert not [c for c in sink.of(Cell) if "context.chunks" in c.code]  # no scan
    assert (result.answer, result.status, len(sub.seen)) == ("7481", "ok", 1)


def test_a_reading_whose_answer_is_on_a_line_without_the_questions_words_is_not_shown(notes: Path, tmp_path: Path) -> None:
    """A question in other words: the helper's reading of the question's passages proves nothing,
    so the repeat goes straight on to the scan of every piece."""
    search = repl("print(context.search('alpha omega'))")
    root = Scripted(SMALL_ROOT, [search, search, repl("FINAL('7481')")])
    request = AskRequest(Inputs((str(notes),)), "Which alpha number opens the door?", ModelFlags(SMALL_ROOT, "sub"), Limits(max_iterations=6))
    sink = ListSink()
    rlm_with(Models(root, Scripted("sub", answer=code_helper)), sink, tmp_path).ask(request)

    assert [c.output for c in sink.of(Cell) if "[passages]" in c.code] == ["(no output)"]
    assert "llm_find(question, context.chunks()) to ask the helper" in root.seen[0][-1]["content"]
    turn = root.seen[2][-1]["content"]
    assert "The helper read" not in turn and "'7481' (line 2: the code is 7481)" in turn


def test_a_code_question_asking_for_a_definition_is_shown_the_one_around_the_best_hit_and_its_final(tmp_path: Path) -> None:
    """The 1.5B root searched other words instead of copying the "(in function ...)" line under
    the best hit: the first turn names that definition and ends with the FINAL taking it, and a
    repeat gets the answer-now turn with it."""
    repo = code_repo(tmp_path, "text.py",
        'def pad(s):\n    return s + " "\n\n\ndef wrap_words(s, width):\n'
        '    """Break a paragraph into lines no wider than the given width."""\n    return [s[:width]]\n'
    )
    search = repl("print(context.search('lines wider'))")
    root = Scripted(SMALL_ROOT, [search, search, repl("FINAL('wrap_words')")])
    question = "Which function breaks a paragraph into lines no wider than the given width?"
    request = AskRequest(Inputs((str(repo),)), question, ModelFlags(SMALL_ROOT, "sub"), Limits(max_iterations=6))
    sub = Scripted("sub", answer=lambda prompt: "NONE")
    result = rlm_with(Models(root, sub), ListSink(), tmp_path).ask(request)

    first = root.seen[0][-1]["content"]
    assert "The helper looked up the definition around the best-matching line:\n'wrap_words' (function wrap_words, text.py)" in first
    assert first.endswith("if the helper's answer above is right, that is:\n```repl\nFINAL('wrap_words')\n```")
    assert "looks further" not in first  # offered a search too, the 1.5B root scanned every chunk
    again = root.seen[2][-1]["content"]
    assert "You keep running code you already ran" in again and again.endswith("FINAL('wrap_words')\n```")
    assert (result.answer, sub.seen) == ("wrap_words", [])  # no sub-call: the code graph's reading

    how = Scripted(SMALL_ROOT, [repl("FINAL('it slices')")])
    how_request = AskRequest(Inputs((str(repo),)), "How are paragraphs broken into lines?", ModelFlags(SMALL_ROOT, "sub"))
    rlm_with(Models(how, sub), ListSink(), tmp_path).ask(how_request)
    assert "looked up the definition" not in how.seen[0][-1]["content"]  # not a question for a definition's name


def test_a_run_stopped_with_no_final_after_a_reading_has_the_readings_answer_as_its_partial_answer(tmp_path: Path) -> None:
    repo = code_repo(tmp_path, "text.py", 'def wrap_words(s, width):\n    """Break a paragraph into lines no wider than the width."""\n    return [s]\n')
    bare = repl("wrap_words")  # the 1.5B root ran the reading's name as code, and again
    root = Scripted(SMALL_ROOT, [bare, bare, bare, bare])
    question = "Which function breaks a paragraph into lines no wider than the width?"
    request = AskRequest(Inputs((str(repo),)), question, ModelFlags(SMALL_ROOT, "sub"), Limits(max_iterations=6))
    result = rlm_with(Models(root), ListSink(), tmp_path).ask(request)
    assert (result.answer, result.status) == ("wrap_words", "limit")

    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nomega\n")
    unread = Scripted(SMALL_ROOT, [bare, bare, bare, bare])
    plain = AskRequest(Inputs((str(notes),)), "What is the code?", ModelFlags(SMALL_ROOT, "sub"), Limits(max_iterations=6))
    stopped = rlm_with(Models(unread, Scripted("sub", answer=lambda prompt: "NONE")), ListSink(), tmp_path).ask(plain)
    assert (stopped.answer, stopped.status) == (None, "limit")  # no reading: no answer is made up
