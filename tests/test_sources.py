"""The loader on real files, directories, git repositories and a file:// clone."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rlm_cli.errors import InputError, UsageError
from rlm_cli.sources import LoadOptions, Skipped, load_sources


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config (global excludes, hooks) and a private clone cache."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path / "cache"))


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def make_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


def reasons(skipped: tuple[Skipped, ...]) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


NESTED_IGNORES: dict[str, str | bytes] = {
    ".gitignore": "*.log\nbuild/\n",
    "a.py": "print('a')\n",
    "x.log": "noise\n",
    "build/out.py": "generated\n",
    "build/deep/more.py": "generated\n",
    "sub/.gitignore": "secret.txt\n!keep.log\n",
    "sub/secret.txt": "hidden\n",
    "sub/keep.log": "kept by negation\n",
    "sub/b.py": "print('b')\n",
    "other/secret.txt": "the sub rule is relative to sub/\n",
}
NESTED_KEPT = [
    ".gitignore",
    "a.py",
    "other/secret.txt",
    "sub/.gitignore",
    "sub/b.py",
    "sub/keep.log",
]


# --- single file, stdin, decoding ---------------------------------------------------------


def test_single_file_is_keyed_by_its_name_and_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, {"notes.txt": "line one\r\nline two"}) / "notes.txt"
    loaded = load_sources([str(path)])
    assert loaded.files == {"notes.txt": "line one\r\nline two"}
    assert loaded.skipped == ()
    assert loaded.sources == (str(path),)
    assert loaded.repository is None


def test_invalid_utf8_is_replaced_and_bom_stripped(tmp_path: Path) -> None:
    write(tmp_path, {"latin.txt": b"caf\xe9 ok\n", "bom.txt": b"\xef\xbb\xbfhello\n"})
    loaded = load_sources([str(tmp_path)])
    assert loaded.files["latin.txt"] == "caf\ufffd ok\n"
    assert loaded.files["bom.txt"] == "hello\n"


def test_stdin_is_read_from_the_given_stream() -> None:
    loaded = load_sources(["-"], stdin=io.BytesIO(b"\xef\xbb\xbffrom a pipe\n"))
    assert loaded.files == {"<stdin>": "from a pipe\n"}
    assert loaded.sources == ("-",)


def test_empty_stdin_is_an_input_error() -> None:
    with pytest.raises(InputError, match="stdin was empty"):
        load_sources(["-"], stdin=io.BytesIO(b""))


def test_binary_stdin_is_an_input_error() -> None:
    with pytest.raises(InputError, match="binary"):
        load_sources(["-"], stdin=io.BytesIO(b"\x7fELF\x00\x01"))


def test_stdin_twice_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        load_sources(["-", "-"], stdin=io.BytesIO(b"x"))


def test_named_binary_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"blob.bin": b"abc\x00def"}) / "blob.bin"
    with pytest.raises(InputError, match="blob.bin is a binary file"):
        load_sources([str(path)])


def test_a_named_file_over_the_size_limit_loads(tmp_path: Path) -> None:
    path = write(tmp_path, {"big.txt": "x" * 2_000}) / "big.txt"
    loaded = load_sources([str(path)], LoadOptions(max_file_size=1_000))  # the limit is for directory walks
    assert loaded.files == {"big.txt": "x" * 2_000}


def test_named_fifo_is_read_like_stdin(tmp_path: Path) -> None:
    """`rlm ask <(command)` hands rlm a pipe."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as handle:
            handle.write(b"piped text\n")

    writer = threading.Thread(target=feed, daemon=True)  # a failure must not hang the test run
    writer.start()
    loaded = load_sources([str(fifo)])
    writer.join()
    assert loaded.files == {"pipe": "piped text\n"}


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory: .*nope"):
        load_sources([str(tmp_path / "nope")])


def test_http_url_without_dot_git_gets_a_hint() -> None:
    with pytest.raises(InputError, match=r"must end in \.git"):
        load_sources(["https://example.invalid/owner/repo"])


def test_empty_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"empty.txt": ""}) / "empty.txt"
    with pytest.raises(InputError, match="the file is empty"):
        load_sources([str(path)])


# --- directories ----------------------------------------------------------------------------


def test_plain_directory_applies_nested_gitignores(tmp_path: Path) -> None:
    root = write(tmp_path / "proj", NESTED_IGNORES)
    write(root, {".git/config": "[core]\n", ".git/HEAD": "ref: refs/heads/main\n"})
    loaded = load_sources([str(root)])
    assert list(loaded.files) == NESTED_KEPT
    assert loaded.files["sub/keep.log"] == "kept by negation\n"
    assert reasons(loaded.skipped) == {
        "x.log": "ignored by .gitignore",
        "build/": "ignored by .gitignore",  # one entry for the pruned directory
        "sub/secret.txt": "ignored by .gitignore",
    }
    assert loaded.repository is None  # a .git directory that git does not accept


def test_git_work_tree_uses_gits_own_rules(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", NESTED_IGNORES | {"gone.py": "deleted later\n"})
    (root / "gone.py").unlink()  # tracked but deleted: silently absent
    write(root, {"untracked.md": "new\n", ".git/info/exclude": "local-only.txt\n"})
    write(root, {"local-only.txt": "excluded by .git/info/exclude\n"})
    loaded = load_sources([str(root)])
    assert list(loaded.files) == [
        ".gitignore",
        "a.py",
        "untracked.md",
        "other/secret.txt",
        "sub/.gitignore",
        "sub/b.py",
        "sub/keep.log",
    ]
    assert reasons(loaded.skipped) == {
        "local-only.txt": "ignored by .gitignore",
        "x.log": "ignored by .gitignore",
        "build/": "ignored by .gitignore",
        "sub/secret.txt": "ignored by .gitignore",
    }
    assert not any(path.startswith(".git/") for path in loaded.files)


def test_repository_info_names_head(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"a.py": "x = 1\n"})
    git(root, "remote", "add", "origin", "https://user:secret-token@example.com/o/proj.git")
    loaded = load_sources([str(root / "a.py")])
    info = loaded.repository
    assert info is not None
    assert info.name == "proj"
    assert info.commit == git(root, "rev-parse", "HEAD")
    assert len(info.commit) == 40
    assert info.remote_url == "https://example.com/o/proj.git"  # no credentials


def test_subdirectory_of_a_repository_is_relative_to_itself(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", NESTED_IGNORES)
    loaded = load_sources([str(root / "sub")])
    assert list(loaded.files) == [".gitignore", "b.py", "keep.log"]
    assert loaded.repository is not None and loaded.repository.name == "proj"


def test_no_gitignore_keeps_ignored_files_but_never_dot_git(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", NESTED_IGNORES)
    loaded = load_sources([str(root)], LoadOptions(use_gitignore=False))
    assert set(loaded.files) == set(NESTED_IGNORES)
    assert loaded.skipped == ()


def test_named_ignored_directory_is_still_loaded(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", NESTED_IGNORES)
    loaded = load_sources([str(root / "build")])
    assert list(loaded.files) == ["out.py", "deep/more.py"]


def test_nested_repository_is_reported_not_loaded(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"a.py": "a\n"})
    make_repo(root / "vendored", {"b.py": "b\n"})
    loaded = load_sources([str(root)])
    assert list(loaded.files) == ["a.py"]
    assert reasons(loaded.skipped) == {
        "vendored/": "submodule or nested repository (not loaded)"
    }


def test_binary_and_too_large_members_are_skipped_with_reasons(tmp_path: Path) -> None:
    root = write(
        tmp_path / "d",
        {"ok.txt": "fine\n", "img.png": b"\x89PNG\r\n\x1a\n\x00\x00", "huge.txt": "y" * 3_000},
    )
    loaded = load_sources([str(root)], LoadOptions(max_file_size=2_500))
    assert list(loaded.files) == ["ok.txt"]
    assert reasons(loaded.skipped) == {
        "huge.txt": "larger than --max-file-size (3.0 kB > 2.5 kB)",
        "img.png": "binary",
    }


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    root = write(
        tmp_path / "d",
        {
            "main.py": "",
            "README.md": "",
            "src/app.py": "x\n",
            "src/web/ui.ts": "y\n",
            "tests/test_app.py": "z\n",
            "tests/data/case.py": "w\n",
        },
    )
    options = LoadOptions(includes=("*.py", "src/**/*.ts"), excludes=("tests/",))
    loaded = load_sources([str(root)], options)
    assert list(loaded.files) == ["main.py", "src/app.py", "src/web/ui.ts"]
    assert reasons(loaded.skipped) == {
        "README.md": "not matched by --include",
        "tests/": "excluded by --exclude",
    }


def test_exclusions_in_a_repository(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "proj",
        {"a.py": "1\n", "b.md": "doc\n", "vendor/x.py": "2\n", "vendor/y/z.py": "3\n"},
    )
    loaded = load_sources([str(root)], LoadOptions(excludes=("vendor/", "*.md")))
    assert list(loaded.files) == ["a.py"]
    assert reasons(loaded.skipped) == {
        "b.md": "excluded by --exclude",
        "vendor/": "excluded by --exclude",
    }


def test_symlinks(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"real.txt": "target text\n"})
    outside = write(tmp_path, {"outside.txt": "private\n"}) / "outside.txt"
    os.symlink("real.txt", root / "alias.txt")
    os.symlink("loop", root / "loop")
    os.symlink("missing.txt", root / "dangling.txt")
    os.symlink(outside, root / "leak.txt")
    os.symlink(tmp_path, root / "dirlink")
    (root / "sub").mkdir()
    os.symlink("sub", root / "sublink")
    loaded = load_sources([str(root)])
    assert loaded.files == {"alias.txt": "target text\n", "real.txt": "target text\n"}
    found = reasons(loaded.skipped)
    assert found["loop"] == "symlink loop"
    assert found["dangling.txt"] == "dangling symlink"
    assert found["leak.txt"].startswith("symlink to outside the source")
    assert found["dirlink"].startswith("symlink to outside the source")
    assert found["sublink"] == "symlink to a directory (not followed)"


def test_fifo_in_a_directory_is_skipped(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"a.txt": "a\n"})
    os.mkfifo(root / "pipe")
    loaded = load_sources([str(root)])  # must not block opening the FIFO
    assert list(loaded.files) == ["a.txt"]
    assert reasons(loaded.skipped) == {"pipe": "not a regular file (fifo)"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"a.txt": "a\n", "locked.txt": "secret\n"})
    (root / "locked.txt").chmod(0)
    try:
        loaded = load_sources([str(root)])
    finally:
        (root / "locked.txt").chmod(0o644)
    assert list(loaded.files) == ["a.txt"]
    assert reasons(loaded.skipped) == {"locked.txt": "unreadable: Permission denied"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_named_source_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"locked.txt": "secret\n"}) / "locked.txt"
    path.chmod(0)
    try:
        with pytest.raises(InputError, match="Permission denied"):
            load_sources([str(path)])
    finally:
        path.chmod(0o644)


def test_empty_directory_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="nothing to load from .*empty: no files found"):
        load_sources([str(tmp_path / "empty")])


def test_directory_filtered_to_nothing_says_why(tmp_path: Path) -> None:
    root = write(
        tmp_path / "d",
        {"a.bin": b"\x00", "b.bin": b"\x00", ".gitignore": "*.log\n", "x.log": "l\n"},
    )
    with pytest.raises(InputError) as raised:
        load_sources([str(root)], LoadOptions(excludes=(".gitignore",)))
    message = str(raised.value)
    assert "0 files kept (2 binary, 1 excluded by --exclude, 1 ignored by .gitignore)" in message


def test_directory_of_empty_files_says_so(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"a.txt": "", "b.txt": ""})
    with pytest.raises(InputError, match="all 2 files are empty"):
        load_sources([str(root)])


# --- several sources ------------------------------------------------------------------------


def test_several_sources_are_prefixed_by_their_names(tmp_path: Path) -> None:
    write(tmp_path / "one" / "src", {"app.py": "app\n", "lib/util.py": "util\n"})
    write(tmp_path / "two" / "src", {"other.py": "other\n", "bin.dat": b"\x00"})
    notes = write(tmp_path, {"notes.txt": "notes\n"}) / "notes.txt"
    loaded = load_sources(
        [str(tmp_path / "one" / "src"), str(notes), str(tmp_path / "two" / "src"), "-"],
        stdin=io.BytesIO(b"piped\n"),
    )
    assert loaded.files == {
        "src/app.py": "app\n",
        "src/lib/util.py": "util\n",
        "notes.txt": "notes\n",
        "src~2/other.py": "other\n",
        "<stdin>": "piped\n",
    }
    assert reasons(loaded.skipped) == {"src~2/bin.dat": "binary"}


# --- git URLs -------------------------------------------------------------------------------


def test_file_url_is_cloned_into_the_cache_and_refreshed(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin" / "proj", {"README.md": "v1\n", "a/b.py": "b\n"})
    url = f"file://{origin}"
    loaded = load_sources([url])
    assert loaded.files == {"README.md": "v1\n", "a/b.py": "b\n"}
    assert loaded.repository is not None
    assert loaded.repository.name == "proj"
    assert loaded.repository.commit == git(origin, "rev-parse", "HEAD")
    assert loaded.repository.remote_url == url
    clone = tmp_path / "cache" / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]
    assert (clone / ".git").is_dir()
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"

    write(origin, {"README.md": "v2\n"})
    git(origin, "commit", "-qam", "second")
    refreshed = load_sources([url])
    assert refreshed.files["README.md"] == "v2\n"
    assert refreshed.repository is not None
    assert refreshed.repository.commit == git(origin, "rev-parse", "HEAD")

    subprocess.run(["rm", "-rf", str(origin)], check=True)  # origin gone: the clone still serves
    offline = load_sources([url])
    assert offline.files["README.md"] == "v2\n"


def test_file_url_among_several_sources_is_named_after_the_repository(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin" / "tool.git", {"main.c": "int main;\n"})
    notes = write(tmp_path, {"notes.txt": "n\n"}) / "notes.txt"
    loaded = load_sources([str(notes), f"file://{origin}"])
    assert loaded.files == {"notes.txt": "n\n", "tool/main.c": "int main;\n"}


def test_clone_failure_is_an_input_error_with_gits_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot clone file://.*: .*(does not|not) "):
        load_sources([f"file://{tmp_path}/no-such-repo.git"])
    assert not any((tmp_path / "cache" / "repos").iterdir())  # no half-made clone left


# --- speed ----------------------------------------------------------------------------------


def test_ten_thousand_files_load_quickly(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for folder in range(40):
        (root / f"d{folder}").mkdir(parents=True)
    for index in range(10_000):
        with open(root / f"d{index % 40}" / f"f{index}.py", "w") as handle:
            handle.write(f"value = {index}\n" * 20)
    started = time.perf_counter()
    loaded = load_sources([str(root)])
    elapsed = time.perf_counter() - started
    assert len(loaded.files) == 10_000
    assert elapsed < 3.0, f"took {elapsed:.2f}s"
