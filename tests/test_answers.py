"""Typed answers (--schema) and verified citations (--cite): the real CLI, a real worker, the
scripted server; and the reference checks on their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_rlm

from rlm_cli.answers import AnswerCheck, FinalAnswer, load_schema, verify
from rlm_cli.errors import UsageError

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "line": {"type": "integer"}},
    "required": ["name", "line"],
    "additionalProperties": False,
}


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("import os\n\n\ndef parse_config(path):\n    return os.environ.get(path)\n")
    return src


def test_a_value_that_violates_the_schema_gets_one_corrective_turn(scripted_server, source: Path, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))

    def first(messages: list[dict]) -> str:
        assert '"required": [' in messages[1]["content"], "the first turn states the schema"
        return repl("FINAL({'name': 'parse_config', 'line': 'four'})")

    def second(messages: list[dict]) -> str:
        assert "does not satisfy the JSON Schema" in messages[-1]["content"]
        assert "at $.line: 'four' is not of type 'integer'" in messages[-1]["content"]
        return repl("FINAL({'name': 'parse_config', 'line': 4})")

    server = scripted_server([first, second])
    ran = run_rlm("ask", str(source), "Where is the config parsed?", *server.cli_args(), "--schema", str(schema_file))

    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout) == {"name": "parse_config", "line": 4}
    assert len(server.root_requests()) == 2


def test_json_text_validates_and_json_output_carries_the_value(scripted_server, source: Path) -> None:
    server = scripted_server([repl("FINAL('[1, 2, 3]')")])
    ran = run_rlm("ask", str(source), "q?", *server.cli_args(), "--schema", '{"type": "array", "items": {"type": "integer"}}', "--json")

    assert ran.code == 0, ran.stderr
    assert ran.json()["answer"] == [1, 2, 3]


def test_a_value_that_never_validates_ends_as_a_limit(scripted_server, source: Path) -> None:
    wrong = repl("FINAL(['not', 'an', 'object'])")
    server = scripted_server([wrong, wrong])
    ran = run_rlm("ask", str(source), "q?", *server.cli_args(), "--schema", json.dumps(SCHEMA), "--json")

    assert ran.code == 5, ran.stderr
    data = ran.json()
    assert data["status"] == "limit"
    assert "does not satisfy --schema" in data["error"] and "is not of type 'object'" in data["error"]
    assert len(server.root_requests()) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"type": "object", "required": "name"}', "--schema is not a valid JSON Schema (at required): 'name' is not of type 'array'"),
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON Schema is an object, not list"),
    ],
)
def test_an_invalid_schema_file_is_a_usage_error(tmp_path: Path, source: Path, content: str, message: str) -> None:
    schema_file = tmp_path / "bad.json"
    schema_file.write_text(content)
    ran = run_rlm("ask", str(source), "q?", "--model", "openai/none", "--api-base", "http://127.0.0.1:9/v1", "--schema", str(schema_file))

    assert ran.code == 2
    assert len(ran.stderr.strip().splitlines()) == 1 and message in ran.stderr, ran.stderr


def test_a_missing_schema_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_schema(str(tmp_path / "nope.json"))


def test_cite_prints_one_verified_and_one_unverified_source(scripted_server, source: Path) -> None:
    code = "FINAL('parse_config in app.py', sources=['app.py:4 \"def parse_config(path):\"', 'app.py:40 \"def load()\"'])"
    server = scripted_server([lambda messages: repl(code) if "sources=[" in messages[1]["content"] else "no instructions"])
    ran = run_rlm("ask", str(source), "Where is the config parsed?", *server.cli_args(), "--cite")

    assert ran.code == 0, ran.stderr
    assert ran.stdout == (
        "parse_config in app.py\n\nSources:\n"
        '  [verified  ] app.py:4 "def parse_config(path):"\n'
        '  [unverified] app.py:40 "def load()"  (app.py has 5 lines)\n'
    )


def test_cite_json_carries_sources_with_a_verified_flag(scripted_server, source: Path) -> None:
    code = "FINAL('x', sources=[('app.py', 1, 'import os'), {'path': 'lib.py', 'line': 2, 'quote': 'x'}])"
    server = scripted_server([repl(code)])
    ran = run_rlm("ask", str(source), "q?", *server.cli_args(), "--cite", "--json")

    assert ran.code == 0, ran.stderr
    sources = ran.json()["sources"]
    assert [(s["path"], s["line"], s["verified"]) for s in sources] == [("app.py", 1, True), ("lib.py", 2, False)]
    assert sources[1]["reason"] == "no file lib.py in the context"


FILES = {"src/app.py": "import os\n\ndef parse(path):\n    return path\n", "README.md": "# demo\n"}


@pytest.mark.parametrize(
    ("ref", "verified", "reason"),
    [
        ('src/app.py:3 "def parse(path):"', True, None),
        ("app.py:3 `def   parse(path)`", True, None),  # the one file ending in the path; spaces squashed
        ("./src/app.py:3-4: 'return path'", True, None),
        ({"path": "src/app.py", "line": 1, "quote": "import os"}, True, None),
        ('src/app.py:1 "def parse"', False, "the quote is not on the cited line (it is on line 3)"),
        ("src/app.py:3", False, "no quoted fragment to check"),
        ('src/app.py:0 "import"', False, "src/app.py has 4 lines"),
        ('lib/app.py:1 "import"', False, "no file lib/app.py in the context"),
        ("somewhere in the code", False, "not a path:line reference"),
    ],
)
def test_verify_checks_file_line_and_quote(ref: object, verified: bool, reason: str | None) -> None:
    source = verify(ref, FILES)
    assert (source.verified, source.reason) == (verified, reason)


def test_a_dict_answer_arriving_as_json_is_validated_as_that_value() -> None:
    check = AnswerCheck({"type": "object", "required": ["a"]})
    good = check.check(FinalAnswer("{'a': 1}", json='{"a": 1}'))
    assert (good.errors, good.text, good.value, good.typed) == ((), '{"a": 1}', {"a": 1}, True)
    assert check.check(FinalAnswer("{'b': 1}", json='{"b": 1}')).errors == ("at $: 'a' is a required property",)
    assert check.check(FinalAnswer("plain words")).errors == ("at $: 'plain words' is not of type 'object'",)
    assert AnswerCheck({"type": "string"}).check(FinalAnswer("plain words")).value == "plain words"
