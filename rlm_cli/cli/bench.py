"""`rlm bench`: generate tasks (or read --tasks), run them through methods, print the table.

The table (or `--json`) goes to stdout; live progress, one line per job started and finished,
to stderr. With `--output DIR`: a results file per task and method, rlm's trajectories, the
generated inputs and the plot `DIR/bench.png`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.options import ApiBase, Model, SubModel, model_flags

if TYPE_CHECKING:
    from rlm_cli.bench.runner import BenchEvent

DEFAULT_METHODS = ["rlm", "direct"]


def _progress(event: BenchEvent) -> None:
    from rlm_cli.bench.runner import JobStarted
    from rlm_cli.bench.tasks import size_label

    if isinstance(event, JobStarted):
        sys.stderr.write(f"[{event.index}/{event.total}] {event.task.id} · {event.method} · started\n")
    else:
        o = event.outcome
        failed = f" · {o.result.status}: {o.result.error}" if o.result.status != "ok" else ""
        sys.stderr.write(
            f"[{event.done}/{event.total} done] {o.task.id} ({size_label(o.task.chars)} chars) · {o.method} · "
            f"score {o.score:.2f} · {o.result.seconds:.1f} s{failed}\n"
        )
    sys.stderr.flush()


@app.command()
def bench(
    family: Annotated[list[str] | None, typer.Option("--family", help="A task family (repeatable); default all.")] = None,
    sizes: Annotated[str, typer.Option("--sizes", help="Input sizes in characters, e.g. 4k,64k,2M.")] = "4k,16k,64k,256k,2M",
    seed: Annotated[int, typer.Option("--seed", help="The first seed.")] = 1,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="How many seeds, from --seed on.")] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Tasks per family, size and seed.")] = 1,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="rlm, auto (rlm --strategy auto), direct, summary, retrieval (repeatable); default rlm, direct."),
    ] = None,
    tasks_file: Annotated[Path | None, typer.Option("--tasks", help="Your own tasks, JSONL: source, question, gold, rule.")] = None,
    code_package: Annotated[
        str, typer.Option("--code-package", help="The code family's package: an installed package's name or a directory.")
    ] = "rich",
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Root turns per rlm run.")] = 12,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1.0, help="Seconds per rlm run.")] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, help="Runs at once; keep 1 for a local model, whose slots share one 8k-token cache.")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (summary and every task) on stdout.")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="Write results per task and the plot bench.png here.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")] = False,
) -> None:
    """Answer-quality benchmark, offline: generated tasks (or --tasks), methods side by side, a table and a plot."""
    from rlm_cli.api import Limits, Rlm
    from rlm_cli.bench.methods import BASELINES, METHODS, RLM_METHODS, Method, RlmMethod
    from rlm_cli.bench.plot import plot
    from rlm_cli.bench.report import as_json as report_json
    from rlm_cli.bench.report import summarise, table
    from rlm_cli.bench.runner import run_bench
    from rlm_cli.bench.tasks import FAMILIES, generate, parse_sizes
    from rlm_cli.bench.tasks.user import read_tasks
    from rlm_cli.errors import UsageError
    from rlm_cli.trace.notices import NoticeLines

    with guard():
        methods = list(dict.fromkeys(method or DEFAULT_METHODS))
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise UsageError(f"--method: unknown {', '.join(unknown)}; known: {', '.join(METHODS)}")
        if tasks_file is not None:
            tasks = read_tasks(tasks_file)
        else:
            tasks = generate(family or list(FAMILIES), parse_sizes(sizes), range(seed, seed + seeds), limit, code_package)
        rlm = Rlm(sinks=[] if quiet else [NoticeLines(sys.stderr)])
        flags = model_flags(model, sub_model, api_base, None)
        limits = Limits(max_iterations=max_iterations, timeout=timeout)
        with tempfile.TemporaryDirectory(prefix="rlm-bench-") as scratch, rlm.models(flags) as models:
            workdir = output or Path(scratch)
            made: list[Method] = [
                RlmMethod(rlm, models, flags, limits, m) if m in RLM_METHODS else BASELINES[m](models.root_client())
                for m in methods
            ]
            outcomes = asyncio.run(run_bench(
                tasks, made, jobs=jobs, workdir=workdir, results_dir=output / "results" if output else None,
                on_event=(lambda event: None) if quiet else _progress,
            ))
        rows = summarise(outcomes)
        if output is not None:
            try:
                shown = plot(rows, output / "bench.png")
                sys.stderr.write(f"plot: {shown}\n")
            except UsageError as exc:
                sys.stderr.write(f"rlm: warning: no plot: {exc}\n")
        if as_json:
            sys.stdout.write(json.dumps(report_json(rows, outcomes), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(table(rows))
