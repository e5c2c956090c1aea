"""The hand-off of the input to the worker (`worker.handoff`) and the summary the host builds."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import pytest

from rlm_cli.codegraph import build_code_index
from rlm_cli.loop.prompts import describe_context
from rlm_cli.sources.context import Context
from rlm_cli.sources.git import RepoInfo
from rlm_cli.sources.summary import CodeSummary, ContextSummary
from rlm_cli.worker import handoff
from rlm_cli.worker.handoff import Handoff


def _round_trip(given: Handoff) -> Context:
    fd, size = given.open()
    assert size == os.fstat(fd).st_size > 0
    return handoff.load(fd)  # what the worker does with the descriptor it inherits


def test_files_survive_the_hand_off_exactly() -> None:
    files = {"a.txt": "plain\n", "b/ü.md": "non-ASCII: ü € 😀\n", "lone": "a lone surrogate \udcff here", "empty": ""}
    context = _round_trip(Handoff.of(files))
    assert dict(context.files) == files
    assert context == Context(files)


def test_a_big_file_is_written_in_slices_and_read_back_whole() -> None:
    text = "0123456789abcdef\n" * (handoff.SLICE_CHARS // 8)  # a little over two slices
    context = _round_trip(Handoff.of({"big.log": text}))
    assert context == text and list(context.files) == ["big.log"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd sealing is Linux's")
def test_the_blob_is_sealed_against_writes() -> None:
    fd, _ = Handoff.of({"x": "data"}).open()
    try:
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"forged", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 1)
    finally:
        os.close(fd)


def test_the_code_index_travels_with_the_files() -> None:
    files = {
        "app.py": "class Store:\n    def save(self):\n        pass\n\ndef main():\n    Store().save()\n",
        "README.md": "# app\n",
    }
    index = build_code_index(files, cache_dir=None)
    context = _round_trip(Handoff.of(files, (index, CodeSummary.of(index.summary()))))
    assert context.symbols() == index.symbols()
    assert [s.qualname for s in context.callers("save")] == ["main"]


def test_a_blob_of_another_format_is_refused() -> None:
    fd = os.memfd_create("x") if hasattr(os, "memfd_create") else os.open(os.devnull, os.O_RDONLY)
    os.write(fd, b"not a hand-off blob at all")
    with pytest.raises(ValueError, match="not a blob"):
        handoff.load(fd)


@pytest.mark.parametrize("count", [0, 1, 27])
def test_the_summary_is_the_shape_of_the_context_without_its_text(count: int) -> None:
    files = {f"pkg/mod{i}.py": f"SECRET_{i} = 'do not leak'\n" * (i + 1) for i in range(count - 2)}
    if count > 1:
        files["README"] = "SECRET readme\n"
        files["web/app.TS"] = "SECRET ts, no newline at the end"
    elif count == 1:
        files["one.txt"] = "SECRET line\nno newline"
    context = Context(files)
    summary = ContextSummary.of(files)
    assert summary.chars == len(context)
    assert summary.lines == len(context.splitlines())
    assert summary.files == count and summary.paths == tuple(files)[:20]
    if count == 27:
        assert summary.largest_files[0] == ("pkg/mod24.py", len(files["pkg/mod24.py"]))
        assert len(summary.largest_files) == 5
        assert summary.extensions == {".py": 25, "(none)": 1, ".ts": 1}
    dumped = json.dumps(dataclasses.asdict(summary))
    assert "SECRET" not in dumped and "leak" not in dumped


def test_the_trajectory_keeps_the_shape_of_run_start_context() -> None:
    repo = RepoInfo("proj", "0123456789abcdef", "https://example.com/proj.git")
    summary = ContextSummary.of({"a.py": "x = 1\n", "b.py": "y = 2\n"}, repository=repo)
    record = json.loads(json.dumps(dataclasses.asdict(summary)))
    assert {"type", "chars", "lines", "files", "paths", "largest_files", "extensions", "code", "repository"} <= set(record)
    assert record["type"] == "Context (str)" and record["paths"] == ["a.py", "b.py"]
    assert record["largest_files"] == [["a.py", 6], ["b.py", 6]]
    assert record["repository"] == {"name": "proj", "commit": "0123456789abcdef", "remote_url": "https://example.com/proj.git"}


def test_file_names_reach_the_prompt_with_control_characters_escaped() -> None:
    files = {"\x1b]0;pwned\x07.txt": "a\n", "evil\x1b[2J\nname.py": "b\n"}
    text = describe_context(ContextSummary.of(files))
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07.txt" in text and "evil\\x1b[2J\\x0aname.py" in text
