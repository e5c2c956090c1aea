"""`rlm batch --ray` against a real Ray cluster: a head started here, on 127.0.0.1, for this module.

The cluster has two CPUs and each task asks for both, so tasks run one after another and the
test knows which Ray worker process runs the task it kills. Skipped only when Ray is not
importable.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_rlm
from scripted_server import Fault
from test_batch import FIND_CODE, notes, results, write_tasks

pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlm-cli[ray]'): the Ray path of rlm batch is not tested")
psutil = pytest.importorskip("psutil", reason="psutil (a dependency of Ray) is needed to kill a task's process")

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on this machine, stopped (every process it started) at teardown."""
    home = tmp_path_factory.mktemp("ray-home")
    temp = tempfile.mkdtemp(prefix="rlm-ray-", dir="/tmp")  # short: Ray's Unix sockets live in it
    env = {**os.environ, "RLM_CACHE_DIR": str(home / "cache"), "RLM_CONFIG": str(home / "none.toml"), "RLM_LOCAL_DEFAULT": "0"}
    head = subprocess.Popen(
        [RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--port=0", "--num-cpus=2", "--include-dashboard=false",
         "--object-store-memory=80000000", "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    address = None
    assert head.stdout is not None
    for line in head.stdout:
        found = re.search(r"ray start --address='([^']+)'", line)
        address = found.group(1) if found else address
        if "--block" in line or head.poll() is not None:
            break
    try:
        assert address, "ray start printed no address"
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head's processes stop; `ray start --block` may linger
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=15)
        shutil.rmtree(temp, ignore_errors=True)


def running_task_process() -> psutil.Process:
    """The Ray worker process executing a task (Ray titles it after the function)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::_run_task"):
            return proc
    raise AssertionError("no Ray worker is running a task")


def test_a_batch_on_ray_survives_a_killed_task_and_collects_trajectories(ray_cluster: str, scripted_server, tmp_path: Path) -> None:
    killed: list[int] = []

    def reply(messages: list[dict]) -> str | Fault:
        if not killed and any("victim" in str(m.get("content")) for m in messages):
            proc = running_task_process()
            killed.append(proc.pid)
            proc.kill()
            return Fault.drop()
        return FIND_CODE

    lines = notes(tmp_path, 2)
    lines[1]["question"] = "What is the code, victim?"
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "README").write_text("the code is 77\n")
    lines.append({"id": "dir", "source": "repo", "question": "What is the code?"})
    server = scripted_server([reply] * 8)
    tasks = write_tasks(tmp_path / "tasks.jsonl", lines)
    ran = run_rlm("batch", str(tasks), *server.cli_args(), "--ray", ray_cluster, "--ray-num-cpus", "2", timeout=110)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == ""  # Ray's driver prints a dead worker's notice; not on rlm's stdout
    assert len(killed) == 1
    got = {r["id"]: r for r in results(tmp_path / "tasks.results.jsonl")}
    assert {k: r["answer"] for k, r in got.items()} == {"t0": "1000", "t1": "1001", "dir": "77"}
    victim = [r for r in server.root_requests() if "victim" in json.dumps(r.messages)]
    assert len(victim) == 2  # the first attempt died with its process; Ray ran it again
    for record in got.values():
        trace = Path(record["trace_file"])
        assert trace.parent == tmp_path / "tasks.results.traces"
        assert json.loads(trace.read_text().splitlines()[-1])["type"] == "run_end"


def test_an_unreachable_ray_address_is_one_line_and_exit_2(tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", notes(tmp_path, 1))
    ran = run_rlm("batch", str(tasks), "--model", "m", "--ray", "127.0.0.1:1", timeout=60)

    assert ran.code == 2, ran.stderr
    assert ran.stderr.strip().splitlines() == [
        "rlm: error: --ray 127.0.0.1:1: no Ray cluster answers at 127.0.0.1:1 (Connection refused)"
    ]


def test_a_shipped_directory_holds_only_what_the_loader_keeps(tmp_path: Path) -> None:
    from rlm_cli.api import Inputs
    from rlm_cli.batch.on_ray import pack

    repo = tmp_path / "repo"
    (repo / "build").mkdir(parents=True)
    (repo / "README").write_text("the code is 77\n")
    (repo / ".env").write_text("API_KEY=sk-live-0123456789abcdef\n")
    (repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / "build" / "out.txt").write_text("generated\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\0\0\0")
    (repo / "notes.md").write_text("skip me\n")
    (repo / ".gitignore").write_text("build/\n")
    inputs = Inputs(("repo",), exclude=("*.md",))

    packed = pack(str(repo), inputs, 10_000)
    assert packed is not None
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        shipped = {member.name: tar.extractfile(member).read() for member in tar.getmembers()}  # type: ignore[union-attr]
    assert shipped == {"repo/README": b"the code is 77\n", "repo/.gitignore": b"build/\n"}
    assert pack(str(repo), inputs, 10) is None  # larger than ship_max: passed as a path
    assert pack(str(repo / "README"), inputs, 10_000) is not None
    assert pack(str(tmp_path / "missing"), inputs, 10_000) is None
