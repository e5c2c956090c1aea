"""rlm against the official `rlms` library, side by side: same scripted server, same scenarios.

With `--install`, a temporary virtualenv gets `rlms==0.1.3` from the registry (it is never a
dependency of rlm); `--rlms-python PATH` uses one made before. Both run as whole processes
against one `tests/scripted_server.py`, `--repeat` times (medians are shown):

- 64 batched sub-calls of 500 ms: the process's wall time, the sub-calls' span on the server and
  the most in flight at once;
- 10 trivial turns (9 cells that print, then the answer): the process's wall time, process start
  to the first root request, the last root reply to process exit, and the gap between turns (a
  root reply leaving the server to the next root request arriving: cell, worker round trip and
  bookkeeping), the first gap left out for both (rlm's first cell also waits for the rest of its
  worker's start, which runs while the first request is out).

    python benchmarks/bench_vs_rlms.py --install [--repeat 5]

rlm runs with the options a user would type (`--api-base`, `--model`, `--sub-model`, `-q`) and
a fresh cache directory per run, so the cross-run sub-call cache does not help it (nor do the
secret scanner's compiled patterns and scan results, which a user's second run finds in the
cache). One more row shows rlm's start with a warm cache directory (kept across its runs);
rlms keeps nothing across runs, so its figure is the cold one. rlm's batch is also timed as its
cell saw it (from the trajectory; rlms has none). Bytecode is compiled first for both (pip
compiles rlms when it installs it).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

RLMS = "rlms==0.1.3"
CALLS, SUB_LATENCY, TURNS = 64, 0.5, 10

# rlms 0.1.3 ends a run when a cell sets answer["ready"]; rlm when a cell calls FINAL.
FINISH = {"rlm": "FINAL({value})", "rlms": "answer['content'] = str({value}); answer['ready'] = True"}

RLMS_DRIVER = """
import sys
from rlm import RLM
url, source, question = sys.argv[1:4]
rlm = RLM(
    backend="openai",
    backend_kwargs={"model_name": "root", "base_url": url, "api_key": "no-key"},
    other_backends=["openai"],
    other_backend_kwargs=[{"model_name": "sub", "base_url": url, "api_key": "no-key"}],
    environment="local",
    max_iterations=30,
)
print(rlm.completion(prompt=open(source).read(), root_prompt=question).response)
"""


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@dataclass
class Run:
    wall: float
    first_request: float  # process start to the first root request
    exit_after_reply: float  # the last root reply to process exit
    gaps: list[float]  # root reply finished -> next root request received
    sub_span: float | None
    sub_peak: int
    cell: float | None = None  # rlm: the first cell's duration, from the trajectory


def run_once(
    tool: str, python: str, script: list[str], source: Path, work: Path, sub_latency: float = 0.0, cache: Path | None = None
) -> Run:
    """One whole process; `cache` is rlm's cache directory (None: a fresh one)."""
    trace = Path(tempfile.mkdtemp(dir=work)) / "trace.jsonl"
    with ScriptedServer(script, sub_latency=sub_latency) as server:
        if tool == "rlm":
            cmd = [python, "-m", "rlm_cli", "ask", str(source), "Answer the question.", *server.cli_args(), "-q", "--trace", str(trace)]
        else:
            cmd = [python, "-c", RLMS_DRIVER, server.url, str(source), "Answer the question."]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["RLM_CACHE_DIR"] = str(cache or tempfile.mkdtemp(dir=work))
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
        ended = time.monotonic()
        roots = server.root_requests()
        subs = server.sub_requests()
    if proc.returncode != 0 or not roots or (sub_latency and len(subs) != CALLS):
        raise SystemExit(f"{tool} failed (exit {proc.returncode}, {len(subs)} sub-calls): {proc.stderr.strip()[-800:]}")
    finished = [r.finished_at or r.received_at for r in roots]
    cells = [json.loads(line) for line in trace.read_text().splitlines() if '"type": "cell"' in line] if trace.exists() else []
    return Run(
        wall=ended - started,
        first_request=roots[0].received_at - started,
        exit_after_reply=ended - finished[-1],
        gaps=[nxt.received_at - done for done, nxt in zip(finished, roots[1:])],
        sub_span=(max(r.finished_at or 0 for r in subs) - min(r.received_at for r in subs)) if subs else None,
        sub_peak=server.max_in_flight("sub"),
        cell=cells[0]["duration_s"] if cells else None,
    )


def batch_script(tool: str) -> list[str]:
    code = "answers = llm_query_batched([f'Echo this record: {line}' for line in context.splitlines()])\n"
    return [repl(code + FINISH[tool].format(value="len(answers)"))]


def turns_script(tool: str) -> list[str]:
    return [repl(f"print({i})") for i in range(TURNS - 1)] + [repl(FINISH[tool].format(value="'done'"))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def make_rlms_venv(where: Path) -> str:
    venv.EnvBuilder(with_pip=True).create(where)
    python = str(where / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", RLMS], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help=f"pip install {RLMS} into a temporary virtualenv")
    parser.add_argument("--rlms-python", help="the python of a virtualenv that has rlms already")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.install and not args.rlms_python:
        raise SystemExit("say --install (a temporary virtualenv with rlms) or --rlms-python PATH")
    compileall.compile_dir(str(ROOT / "rlm_cli"), quiet=1)

    with tempfile.TemporaryDirectory(prefix="bench-vs-rlms-") as tmp:
        work = Path(tmp)
        rlms_python = args.rlms_python or make_rlms_venv(work / "venv")
        source = work / "records.txt"
        source.write_text("".join(f"record {i}: value {i * 7}\n" for i in range(CALLS)))
        tools: dict[str, str] = {"rlms": rlms_python, "rlm": sys.executable}
        batch: dict[str, list[Run]] = {t: [] for t in tools}
        turns: dict[str, list[Run]] = {t: [] for t in tools}
        warm: list[Run] = []
        kept = work / "rlm-cache"
        run_once("rlm", sys.executable, turns_script("rlm"), source, work, cache=kept)  # fills it
        for _ in range(args.repeat):  # interleaved, so both see the same load on a shared machine
            for tool, python in tools.items():
                batch[tool].append(run_once(tool, python, batch_script(tool), source, work, SUB_LATENCY))
                turns[tool].append(run_once(tool, python, turns_script(tool), source, work))
            warm.append(run_once("rlm", sys.executable, turns_script("rlm"), source, work, cache=kept))
        load = os.getloadavg()

    rows: list[tuple[str, Callable[[str], float], str]] = [
        (f"{CALLS} batched sub-calls at {SUB_LATENCY * 1000:.0f} ms, whole process", lambda t: median([r.wall for r in batch[t]]), "s"),
        (f"{TURNS} trivial turns, whole process", lambda t: median([r.wall for r in turns[t]]), "s"),
        ("process start to first root request", lambda t: median([r.first_request for r in turns[t]]), "s"),
        ("process start to first root request, warm cache",
         lambda t: median([r.first_request for r in (warm if t == "rlm" else turns[t])]), "s"),
        ("last root reply to process exit", lambda t: median([r.exit_after_reply for r in turns[t]]), "s"),
        ("gap between turns (median)", lambda t: median([g for r in turns[t] for g in r.gaps[1:]]) * 1000, "ms"),
        (f"{CALLS} sub-calls at {SUB_LATENCY * 1000:.0f} ms, sub-call span", lambda t: median([r.sub_span or 0 for r in batch[t]]), "s"),
    ]
    print(f"medians of {args.repeat} runs each; ratio = rlm / rlms (below 1: rlm is faster);"
          f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(f"| | `{RLMS.replace('==', ' ')}` | `rlm` | ratio |")
    print("|---|---|---|---|")
    for label, figure, unit in rows:
        theirs, ours = figure("rlms"), figure("rlm")
        fmt = "{:.1f} ms" if unit == "ms" else "{:.2f} s"
        print(f"| {label} | {fmt.format(theirs)} | {fmt.format(ours)} | {ours / theirs:.2f}x |")
    cell = median([r.cell or 0 for r in batch["rlm"]])
    print(f"| {CALLS} sub-calls at {SUB_LATENCY * 1000:.0f} ms, as the cell sees it | | {cell:.2f} s | |")
    peaks = {t: max(r.sub_peak for r in batch[t]) for t in tools}
    print(f"| {CALLS} sub-calls, most in flight | {peaks['rlms']} | {peaks['rlm']} | |")


if __name__ == "__main__":
    main()
