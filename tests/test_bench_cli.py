"""`rlm bench` end to end: the real CLI, a real worker, the scripted server as every model.

The scripted root answers like a perfect reader: for an RLM run it writes code that finds the
answer in `context` (a regex for a needle; `llm_map` over the lines for a count, which the
scripted sub-model answers by recognising each line's category); for a baseline's single
prompt it reads the answer off the prompt's text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import run_rlm

from rlm_cli.bench.tasks.oolong import TEMPLATES

RLM_NEEDLE = """```repl
import re
m = re.search(r"special magic number for {key} is: (\\d+)", context)
FINAL(m.group(1))
```"""

RLM_COUNT = """```repl
kinds = llm_map("Which category is this question?", context.splitlines())
FINAL(sum(k == "{label}" for k in kinds))
```"""

_PATTERNS = [(label, re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(t)) + "$"))
             for label, templates in TEMPLATES.items() for t in templates]


def category(line: str) -> str:
    instance = line.split("Instance: ", 1)[-1].strip()
    return next(label for label, pattern in _PATTERNS if pattern.match(instance))


def sub_answer(prompt: str) -> str:
    """llm_map's numbered batches: one category per numbered line."""
    items = re.findall(r"^(\d+)\. (.*)$", prompt, re.MULTILINE)
    return "\n".join(f"{n}: {category(text)}" for n, text in items)


def root(messages: list[dict[str, Any]]) -> str:
    text = messages[-1]["content"] if len(messages) == 1 else messages[1]["content"]
    question = re.search(r"Question: (.*)", text).group(1)  # type: ignore[union-attr]
    key = re.search(r"magic number for (\S+) mentioned", question)
    label = re.search(r"labelled '([^']+)'", question)
    if len(messages) > 1:  # the RLM loop: system prompt, then the question
        return RLM_NEEDLE.format(key=key.group(1)) if key else RLM_COUNT.format(label=label.group(1))  # type: ignore[union-attr]
    if key:  # a baseline: the text is in the prompt
        found = re.search(rf"magic number for {key.group(1)} is: (\d+)", text)
        return found.group(1) if found else "not found"
    lines = re.findall(r"^Date: .*$", text, re.MULTILINE)
    return str(sum(category(line) == label.group(1) for line in lines))  # type: ignore[union-attr]


def test_bench_runs_every_method_and_writes_table_json_results_and_plot(scripted_server: Any, tmp_path: Path) -> None:
    server = scripted_server([root] * 40, sub_answer=sub_answer)
    out = tmp_path / "out"
    args = ["bench", "--family", "niah", "--family", "oolong", "--sizes", "2k,6k", "--seed", "3",
            "--method", "rlm", "--method", "direct", "--method", "retrieval", "--method", "summary",
            "--jobs", "3", "--output", str(out), *server.cli_args()]

    ran = run_rlm(*args, "--json", timeout=300)

    assert ran.code == 0, ran.stderr
    data = ran.json()
    assert {(r["family"], r["size"], r["method"]) for r in data["summary"]} == {
        (f, s, m) for f in ("niah", "oolong") for s in (2_000, 6_000) for m in ("rlm", "direct", "retrieval", "summary")}
    by_method = {(t["task"]["family"], t["method"]): t for t in data["tasks"]}
    assert by_method[("niah", "rlm")]["score"] == 1.0 and by_method[("niah", "direct")]["score"] == 1.0
    assert by_method[("oolong", "rlm")]["score"] == 1.0  # llm_map went through the real worker and host
    assert by_method[("oolong", "rlm")]["extra"]["subcalls"] >= 1
    results = sorted(p.name for p in (out / "results").glob("*.json"))
    assert len(results) == 16 and "niah-2k-s3-0.rlm.json" in results
    saved = json.loads((out / "results" / "niah-2k-s3-0.rlm.json").read_text())
    assert saved["score"] == 1.0 and (out / "results" / "niah-2k-s3-0.rlm.trace.jsonl").exists()
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "[16/16 done]" in ran.stderr and "Traceback" not in ran.stderr

    table = run_rlm("bench", "--family", "niah", "--sizes", "2k,6k", "--method", "direct", *server.cli_args(), timeout=300)
    assert table.code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["family", "size", "method", "n", "score"]
    assert [row.split()[:5] for row in rows] == [["niah", "2k", "direct", "1", "1.00"], ["niah", "6k", "direct", "1", "1.00"]]


def test_bad_bench_options_are_one_line_usage_errors(tmp_path: Path) -> None:
    for args, message in ((["--family", "nope"], "unknown nope"), (["--method", "magic"], "unknown magic"),
                          (["--sizes", "big"], "--sizes"),
                          (["--tasks", str(tmp_path / "none.jsonl")], "--tasks")):
        ran = run_rlm("bench", *args, "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1")
        assert ran.code in (2, 3), (args, ran.stderr)
        assert message in ran.stderr and "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
