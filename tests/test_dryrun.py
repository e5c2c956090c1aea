"""`--dry-run` figures: the prompt it sizes is the one a run sends; tokens; prices; the cost range."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_rlm

from rlm_cli.budget import Limits
from rlm_cli.dryrun import context_summary, plan
from rlm_cli.dryrun.prices import EXACT_CHARS, count_tokens, price_for
from rlm_cli.sources.loader import LoadedSources, LoadOptions, load_sources


def _load(*sources: Path) -> LoadedSources:
    return load_sources(tuple(map(str, sources)), LoadOptions((), (), True, 5_000_000))


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "client.py").write_text("class Client:\n    def send(self, data):\n        return retry(data)\n")
    (repo / "pkg" / "retry.py").write_text("def retry(data, times=3):\n    return data\n")
    (repo / "notes.md").write_text("# Notes\nThe retry policy lives in pkg/retry.py.\n")
    (repo / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    return repo


def test_the_prompt_sized_is_the_prompt_a_run_sends(scripted_server, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    server = scripted_server(["```repl\nFINAL('ok')\n```"], root_model="gpt-4o-mini")
    ran = run_rlm("ask", str(repo), "Where is the retry policy?", "--api-base", server.url,
                  "--model", "openai/gpt-4o-mini", "--strategy", "rlm", "-q")
    assert ran.code == 0, ran.stderr
    system, first = server.root_requests()[0].messages[:2]

    loaded = _load(repo)
    dry = plan(loaded, "Where is the retry policy?", "openai/gpt-4o-mini", "openai/gpt-4o-mini", Limits(), context_summary(loaded))

    assert dry.prompt == system["content"] + "\n" + first["content"]
    assert [path for path, _ in dry.files] == list(loaded.files)
    assert any(s.path == "blob.bin" for s in dry.skipped)
    assert dry.tokens.method == "o200k_base" and 0 < dry.tokens.tokens < dry.chars


def test_cost_range_from_the_price_table(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    loaded = _load(repo)
    limits = Limits(max_iterations=10)
    dry = plan(loaded, "q?", "gpt-4o", "gpt-4o-mini", limits, context_summary(loaded))

    root, sub = price_for("gpt-4o"), price_for("gpt-4o-mini")
    assert root.input_per_token == pytest.approx(2.5e-6) and sub.max_input_tokens == 128_000
    assert dry.root_cost.low == pytest.approx(root.cost(dry.prompt_tokens.tokens, 400))
    assert dry.root_cost.high is not None and dry.root_cost.high > 10 * dry.root_cost.low
    assert dry.sub_cost.low == 0.0 and dry.sub_cost.high == pytest.approx(sub.cost(dry.tokens.tokens, 300))
    text = dry.as_text()
    assert "estimated cost: root $" in text and "1 to 10 turns" in text and "skipped 1 (" in text
    data = dry.as_json()
    assert data["dry_run"] is True and data["cost_usd"]["total"]["low"] == pytest.approx(dry.root_cost.low)


def test_unknown_models_have_no_price_and_an_estimated_count(tmp_path: Path) -> None:
    assert price_for("openai/no-such-model-xyz").input_per_token is None
    assert price_for("local").cost(10_000, 1_000) == 0.0
    count = count_tokens("abcd" * 1000, "no-such-model-xyz")
    assert (count.tokens, count.method) == (1000, "estimate: 4 characters per token")

    loaded = _load(_repo(tmp_path))
    dry = plan(loaded, "q?", "openai/no-such-model-xyz", "openai/no-such-model-xyz", Limits(), context_summary(loaded))
    assert dry.cost.low is None and "not in litellm's price table" in dry.as_text() and "total unknown" in dry.as_text()


def test_a_huge_input_is_counted_from_a_sample() -> None:
    text = "".join(f"line {i}: the quick brown fox {i * 7919 % 1000} jumps\n" for i in range(60_000))
    assert len(text) > EXACT_CHARS
    sampled = count_tokens(text, "gpt-4o-mini")
    exact = count_tokens(text[: EXACT_CHARS // 2], "gpt-4o-mini").tokens * len(text) / (EXACT_CHARS // 2)
    assert sampled.method == "o200k_base (sampled)"
    assert sampled.tokens == pytest.approx(exact, rel=0.03)
