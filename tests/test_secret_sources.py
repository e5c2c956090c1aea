"""Secrets at the loader: files that are secrets by name, and credentials in git URLs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from git_http_server import GitHttpServer
from test_sources import git, hermetic_git, make_repo, reasons, write

from rlm_cli.errors import InputError
from rlm_cli.sources import LoadOptions, load_sources
from rlm_cli.sources.git import redact_url
from rlm_cli.sources.secret_files import SECRET_FILE, is_secret_file

__all__ = ["hermetic_git"]  # the autouse fixture, shared with test_sources

SECRET_NAMES = [
    ".env", ".env.production", "prod.env", "certs/server.pem", "tls.key", "id_rsa", ".ssh/id_ed25519",
    "credentials.json", "credentials-prod.json", ".netrc", ".npmrc", ".pypirc", "store.p12", "cert.pfx",
    ".git-credentials", "home/.aws/credentials",
]
NOT_SECRET = ["README.md", "id_rsa.pub", ".env.example", "environment.py", "keys.py", "credentials.py", "src/.envy"]


@pytest.mark.parametrize("path", SECRET_NAMES)
def test_secret_names(path: str) -> None:
    assert is_secret_file(path)


@pytest.mark.parametrize("path", NOT_SECRET)
def test_names_that_are_not_secrets(path: str) -> None:
    assert not is_secret_file(path)


def test_walking_a_directory_skips_secret_files_with_the_reason(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"app.py": "x = 1\n", ".env": "A=1\n", "keys/id_rsa": "k\n", "id_rsa.pub": "ssh-rsa AAAA\n"})
    loaded = load_sources([str(root)])
    assert list(loaded.files) == ["app.py", "id_rsa.pub"]
    assert reasons(loaded.skipped) == {".env": SECRET_FILE, "keys/id_rsa": SECRET_FILE}


def test_git_work_tree_skips_secret_files_too(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"app.py": "x = 1\n", "deploy/credentials.json": "{}\n"})
    loaded = load_sources([str(root)])
    assert list(loaded.files) == ["app.py"]
    assert reasons(loaded.skipped) == {"deploy/credentials.json": SECRET_FILE}


def test_a_named_secret_file_or_an_include_loads_it(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"app.py": "x = 1\n", ".env": "A=1\n"})
    assert load_sources([str(root / ".env")]).files == {".env": "A=1\n"}
    included = load_sources([str(root)], LoadOptions(includes=(".env", "*.py")))
    assert list(included.files) == [".env", "app.py"]


def test_redact_url() -> None:
    assert redact_url("https://user:tok@host/o/r.git") == "https://host/o/r.git"
    assert redact_url("https://tok@host/o/r.git") == "https://host/o/r.git"
    assert redact_url("ssh://git:pw@host/o/r.git") == "ssh://host/o/r.git"
    assert redact_url("ssh://git@host/o/r.git") == "ssh://git@host/o/r.git"
    assert redact_url("git@host:o/r.git") == "git@host:o/r.git"
    assert redact_url("./some/path") == "./some/path"


TOKEN = "tok-" + "s3cr3t" * 3


@pytest.fixture
def served(tmp_path: Path) -> GitHttpServer:
    work = make_repo(tmp_path / "work", {"README.md": "served over http\n"})
    bare = tmp_path / "srv" / "proj.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return GitHttpServer(tmp_path / "srv", "alice", TOKEN)


def test_credentials_in_a_clone_url_stay_out_of_the_clone_and_the_cache_key(tmp_path: Path, served: GitHttpServer) -> None:
    with served:
        url = served.url.replace("http://", f"http://alice:{TOKEN}@") + "/proj.git"
        loaded = load_sources([url])
        public = served.url + "/proj.git"
        assert loaded.files == {"README.md": "served over http\n"}
        assert loaded.sources == (public,)
        assert loaded.repository is not None and loaded.repository.remote_url == public
        clone = tmp_path / "cache" / "repos" / hashlib.sha256(public.encode()).hexdigest()[:16]
        assert (clone / ".git").is_dir()
        assert git(clone, "config", "--get", "remote.origin.url") == public
        stored = b"".join(p.read_bytes() for p in clone.rglob("*") if p.is_file())
        assert TOKEN.encode() not in stored
        assert not any(TOKEN in str(p) for p in (tmp_path / "cache").rglob("*"))

        refreshed = load_sources([url])  # the refresh (fetch) authenticates the same way
        assert refreshed.files == loaded.files
        assert sum("git-upload-pack" in p for p in served.paths) >= 2


def test_a_wrong_token_fails_without_showing_the_token(tmp_path: Path, served: GitHttpServer) -> None:
    with served:
        url = served.url.replace("http://", "http://alice:wrong-" + TOKEN[::-1] + "@") + "/proj.git"
        with pytest.raises(InputError) as raised:
            load_sources([url])
    assert "cannot clone " + served.url + "/proj.git" in str(raised.value)
    assert TOKEN[::-1] not in str(raised.value)
