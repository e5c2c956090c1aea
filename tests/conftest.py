"""Shared pytest fixtures for the rlm test suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scripted_server import scripted_server_fixture

from rlm_cli.worker.sandbox import drop_capabilities

# A factory: ``server = scripted_server(root_replies, sub_answer=..., latency=...)`` starts a
# ScriptedServer that is stopped at teardown (see tests/scripted_server.py).
scripted_server = pytest.fixture(name="scripted_server")(scripted_server_fixture)


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's caches, config and trajectories out of the real user directories."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("RLM_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("RLM_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("RLM_LOCAL_DEFAULT", "0")  # only real-model tests may start the local model
    for name in ("RLM_MODEL", "RLM_SUB_MODEL", "RLM_API_BASE", "RLM_SUB_API_BASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory kept across tests (and runs, in pytest's cache), for the 1.1 GB model."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("rlm-cache") if cache is not None else tmp_path_factory.mktemp("rlm-cache")


@dataclass
class Ran:
    """What one `rlm` process did."""

    code: int
    stdout: str
    stderr: str
    duration_s: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_rlm(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    """Run the real CLI entry point in a child process, as a user's shell would."""
    full_env = {**os.environ, **(env or {})}
    data = input.encode() if isinstance(input, str) else input
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli", *args],
        input=data if data is not None else b"",
        capture_output=True,
        env=full_env,
        timeout=timeout,
    )
    return Ran(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), time.monotonic() - started)


FAST = {"RLM_RETRY_BASE_DELAY": "0.01"}  # provider-fault tests need retries, not their waits


def ask_traced(server: Any, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[Ran, list[dict]]:
    """`rlm ask` of a one-line file against `server`, with the trajectory's records."""
    source = tmp_path / "in.txt"
    if not source.exists():
        source.write_text("0123456789\n")
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(source), "q?", *server.cli_args(), "--trace", str(trace), *extra, env={**FAST, **(env or {})})
    records = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return ran, records


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["type"] == kind]


@pytest.fixture(name="rlm")
def _rlm() -> Callable[..., Ran]:
    return run_rlm


def without_privileges(check: Callable[[], None]) -> None:
    """Run `check` in a forked child that gave up every capability (its children too), so that
    root, as in CI, meets file modes as any user does; the child's traceback is on stderr."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if os.geteuid() != 0 or drop_capabilities():
                check()
                code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the check failed without privileges (see stderr)"
