"""Secret redaction in-process: markers, private-key blocks, the gate, the cache, the default rule."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from secret_fixture import SecretRepo, make_secret_repo

from rlm_cli.redaction import redact, redaction_wanted
from rlm_cli.redaction.detectors import Span, _hyperscan_database, gated_lines, gated_lines_re, scan_text
from rlm_cli.redaction.redact import POOL_MIN_CHARS, apply_spans
from rlm_cli.sources import load_sources


@pytest.fixture
def repo(tmp_path: Path) -> SecretRepo:
    return make_secret_repo(tmp_path / "repo")


def loaded_files(repo: SecretRepo) -> dict[str, str]:
    return load_sources([str(repo.root)]).files


def test_every_planted_secret_becomes_its_marker(repo: SecretRepo) -> None:
    files = loaded_files(repo)
    result = redact(files)
    text = "\n".join(result.files.values())
    for value, kind in repo.planted.items():
        assert value not in text, kind
    found = {(f.path, f.line): f.kind for f in result.findings}
    for value, kind in repo.planted.items():
        path, line = next((p, n) for p, t in files.items() for n, row in enumerate(t.split("\n"), 1) if value in row)
        start_line = next(n for n in range(line, 0, -1) if (path, n) in found)  # a key's block starts above
        assert found[(path, start_line)] == kind, (path, line)


def test_the_line_stays_readable(repo: SecretRepo) -> None:
    files = redact(loaded_files(repo)).files
    assert "  password: [REDACTED:password]\n" in files["config/app.yaml"]
    assert 'DATABASE_URL = "postgres://admin:[REDACTED:password]@db.internal:5432/app"' in files["app/settings.py"]
    assert 'HEADERS = {"Authorization": "Bearer [REDACTED:jwt]"}' in files["app/clients.py"]
    assert files["README.md"] == loaded_files(repo)["README.md"]  # nothing to redact: unchanged


def test_a_private_key_block_is_one_marker_and_keeps_the_line_count(repo: SecretRepo) -> None:
    original = loaded_files(repo)
    result = redact(original)
    deploy = result.files["docs/deploy.md"]
    assert deploy.count("\n") == original["docs/deploy.md"].count("\n")
    assert deploy.split("\n")[:4] == ["Put this key on the server:", "", "[REDACTED:private-key]", ""]
    assert "BEGIN" not in deploy and "END" not in deploy and deploy.endswith("\n\nThen restart.\n")
    assert [f.line for f in result.findings if f.path == "docs/deploy.md"] == [3]
    # the one-line form of JSON credentials: the block between its escaped newlines
    assert result.files["config/service.json"].startswith('{"type": "service_account", "private_key": "[REDACTED:private-key]\\n", ')


def test_findings_and_summary_never_hold_a_value(repo: SecretRepo) -> None:
    result = redact(loaded_files(repo))
    assert result.summary().startswith("redacted 13 secrets in 5 files (2 aws-key, 2 password, 2 private-key, ")
    shown = result.summary() + repr(result.records())
    assert not any(value in shown for value in repo.planted)
    assert redact({"a.txt": "nothing"}).summary() == "no secrets found in 1 file(s)"


def test_the_gate_drops_no_finding(repo: SecretRepo) -> None:
    """Checking only the gated lines finds what checking every line with every plugin finds."""
    extra = {
        "tricky.go": 'dbPassword := "s3cr3t-Value"\n',
        "tricky.c": 'char password[25] = "another-Value1";\n',
        "tricky.cpp": 'std::string secret("cpp-Value4");\n',
        "tricky.js": 'const api_key = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0"\n',
        "tricky.ini": "[db]\npasswd = plain-Value3\n",
    }
    for path, text in {**loaded_files(repo), **extra}.items():
        assert scan_text(path, text) == scan_text(path, text, gate=False), path
    assert all(scan_text(path, text) for path, text in extra.items())  # each form is found at all


def test_hyperscan_and_python_gates_agree(repo: SecretRepo) -> None:
    for text in loaded_files(repo).values():
        assert gated_lines(text) == gated_lines_re(text)


def test_high_entropy_counts_only_in_assignments() -> None:
    rng = random.Random(3)
    value, other = ("".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40)) for _ in "ab")
    text = f'signature = "{value}"; verify("{other}")\ncheck("{value}")\n'
    expected = f'signature = "[REDACTED:high-entropy]"; verify("{other}")\ncheck("{value}")\n'
    assert apply_spans(text, scan_text("x.py", text)) == expected


def test_a_secret_deep_in_a_long_line_is_found() -> None:
    key = "AK" + "IA" + "Q" * 4 + "7" * 12
    for column in (10, 490, 3000, 4990):  # in a piece, across a piece boundary, near the end
        line = "x" * column + f'"{key}"' + "y" * (5000 - column)
        assert apply_spans(line, scan_text("bundle.min.js", line)) == line.replace(key, "[REDACTED:aws-key]")


def test_overlapping_spans_merge_and_a_vendor_kind_wins() -> None:
    spans = [Span(0, 4, 12, "secret"), Span(0, 4, 10, "aws-key"), Span(0, 11, 14, "high-entropy")]
    assert apply_spans("key=ABCDEFGHIJ;;xyz", spans) == "key=[REDACTED:secret];;xyz"
    assert apply_spans("k=AB", [Span(0, 2, 4, "high-entropy"), Span(0, 2, 4, "aws-key")]) == "k=[REDACTED:aws-key]"


def test_the_cache_scans_only_changed_files_and_stores_no_value(repo: SecretRepo, tmp_path: Path) -> None:
    cache = tmp_path / "secrets"
    files = loaded_files(repo)
    first = redact(files, cache)
    assert first.scanned == len(files)
    second = redact(files, cache)
    assert second.scanned == 0
    assert (second.files, second.findings) == (first.files, first.findings)
    changed = {**files, "app/settings.py": files["app/settings.py"] + "# edited\n"}
    assert redact(changed, cache).scanned == 1
    stored = b"".join(p.read_bytes() for p in cache.iterdir())
    assert stored and not any(value.encode() in stored for value in repo.planted)


def test_a_pool_scans_like_one_process(repo: SecretRepo) -> None:
    files = {f"copy{i}/{path}": text for i in range(3) for path, text in loaded_files(repo).items()}
    padded = {**files, "big.txt": "filler line\n" * (POOL_MIN_CHARS // 12 + 1)}  # big enough for a pool
    pooled = redact(padded, processes=2)
    alone = redact(padded, processes=1)
    assert pooled.files == alone.files and pooled.findings == alone.findings


@pytest.mark.parametrize(
    ("flag", "model", "sub_model", "wanted"),
    [
        (None, "gpt-4o", "gpt-4o-mini", True),
        (None, "openai/root", "openai/sub", True),  # a loopback --api-base is still a provider
        (None, "local", "local", False),
        (None, "local:/models/q.gguf", "local", False),
        (None, "local", "gpt-4o-mini", True),  # one remote model is enough
        (True, "local", "local", True),
        (False, "gpt-4o", "gpt-4o", False),
    ],
)
def test_the_default_rule(flag: bool | None, model: str, sub_model: str, wanted: bool) -> None:
    assert redaction_wanted(flag, model, sub_model) is wanted


def test_the_compiled_gate_is_kept_and_a_broken_copy_replaced(repo: SecretRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hyperscan")
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path / "cache"))
    text = loaded_files(repo)["app/settings.py"]
    _hyperscan_database.cache_clear()
    try:
        first = gated_lines(text)
        (stored,) = (tmp_path / "cache" / "secrets").glob("gate-*.hsdb")
        stored.write_bytes(b"not a database")
        _hyperscan_database.cache_clear()
        assert gated_lines(text) == first == gated_lines_re(text)
        assert stored.stat().st_size > 1000  # compiled again and stored again
    finally:
        _hyperscan_database.cache_clear()


def test_a_small_scan_finds_the_same_without_compiling_the_hyperscan_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hyperscan")
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path / "cache"))
    text = 'api_key = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0"\n' + "plain text\n" * 100
    _hyperscan_database.cache_clear()
    try:
        result = redact({"app.py": text}, tmp_path / "scans")
        assert not list(tmp_path.glob("cache/secrets/gate-*.hsdb"))  # ~80 ms saved on a first run
        assert result.files["app.py"].startswith('api_key = "[REDACTED:')
        assert scan_text("app.py", text, quick=True) == scan_text("app.py", text)
        assert list(tmp_path.glob("cache/secrets/gate-*.hsdb"))  # the full scan compiled it after all
    finally:
        _hyperscan_database.cache_clear()
