"""Bad input through the real CLI: one line on stderr, exit 3 (or 2 for usage), no traceback,
and no model call."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import Ran, run_rlm


def one_line_error(ran: Ran, code: int, *words: str) -> None:
    assert ran.code == code, ran.stderr
    assert "Traceback" not in ran.stderr and ran.stdout == ""
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("rlm: error: ")
    for word in words:
        assert word in last


@pytest.fixture
def ask(scripted_server, tmp_path: Path):
    server = scripted_server([])

    def run(*args: str, input: str | bytes | None = None) -> Ran:
        ran = run_rlm("ask", *args, *server.cli_args(), "-q", input=input, timeout=60)
        assert server.requests == []
        return ran

    return run


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(ask, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    secret.chmod(0)
    one_line_error(ask(str(secret), "q?"), 3, "Permission denied")


def test_binary_only_directory(ask, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\0\1\2")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    one_line_error(ask(str(tmp_path), "q?"), 3, "nothing to load", "binary")


def test_binary_named_file(ask, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\0" * 100)
    one_line_error(ask(str(tmp_path / "a.bin"), "q?"), 3, "binary")


def test_invalid_utf8_is_loaded_with_replacement_characters(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe bad\n")
    server = scripted_server(["```repl\nFINAL(str(context.count('\\ufffd')))\n```"])
    ran = run_rlm("ask", str(tmp_path / "bad.txt"), "q?", *server.cli_args(), "-q")
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "2\n"


def test_a_named_five_gigabyte_binary_file_is_refused_without_reading_it_whole(ask, tmp_path: Path) -> None:
    huge = tmp_path / "huge.log"
    subprocess.run(["truncate", "-s", "5G", str(huge)], check=True)
    ran = ask(str(huge), "q?")  # no --max-file-size for a named file: the sniff or the memory check refuses it
    one_line_error(ran, 3)  # binary (sparse zeros) after an 8 KB sniff, or beyond memory
    assert ran.duration_s < 30


def test_five_gigabyte_file_in_a_directory_is_skipped(ask, tmp_path: Path) -> None:
    subprocess.run(["truncate", "-s", "5G", str(tmp_path / "huge.log")], check=True)
    one_line_error(ask(str(tmp_path), "q?"), 3, "nothing to load")


def test_symlink_loop(ask, tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    one_line_error(ask(str(tmp_path / "a"), "q?"), 3, "symlink loop")
    one_line_error(ask(str(tmp_path), "q?"), 3, "nothing to load")


def test_fifo_without_a_writer(ask, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    ran = ask(str(tmp_path / "pipe"), "q?")
    one_line_error(ran, 3, "FIFO")
    assert ran.duration_s < 30


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_device_files(ask, device: str) -> None:
    one_line_error(ask(device, "q?"), 3, "not a regular file")


def test_git_url_that_cannot_be_cloned(ask) -> None:
    one_line_error(ask("file:///nonexistent/repo.git", "q?"), 3, "cannot clone")


def test_empty_question(ask, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x")
    one_line_error(ask(str(tmp_path / "in.txt"), "  \n "), 2, "question is empty")


def test_one_megabyte_question_from_stdin(ask, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x")
    one_line_error(ask(str(tmp_path / "in.txt"), input="why? " * 200_000), 2, "question is")


def test_empty_stdin(ask) -> None:
    one_line_error(ask("-", "q?", input=b""), 3, "stdin was empty")
