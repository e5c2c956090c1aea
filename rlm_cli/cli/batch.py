"""`rlm batch`: many asks from a task file, on this machine or a Ray cluster, resumable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from rlm_cli.cli.app import app, conclude, guard
from rlm_cli.cli.options import (
    DEFAULTS,
    MAX_FILE_SIZE,
    ApiBase,
    CellTimeout,
    Exclude,
    Include,
    MaxFileSize,
    Model,
    NoGitignore,
    SubApiBase,
    SubModel,
    model_flags,
)
from rlm_cli.errors import UsageError
from rlm_cli.paths import check_writable


@app.command(no_args_is_help=True)
def batch(
    tasks: Annotated[Path, typer.Argument(help="The task file: one JSON object a line (id, source or sources, question, options).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Results (JSONL), appended as tasks end; default TASKS.results.jsonl.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("-j", "--jobs", min=1, help="Tasks running at once; default 4, on Ray the cluster's CPUs / --ray-num-cpus.")
    ] = None,
    traces: Annotated[
        Path | None, typer.Option("--traces", help="Directory for one trajectory per task; default RESULTS.traces/.")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", min=0.0, help="Stop starting tasks once the batch has cost this much (USD).")
    ] = None,
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    include: Include = None,
    exclude: Exclude = None,
    no_gitignore: NoGitignore = False,
    max_file_size: MaxFileSize = MAX_FILE_SIZE,
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Root model turns per task.")] = DEFAULTS.max_iterations,
    max_depth: Annotated[int, typer.Option("--max-depth", min=1, help="Recursion depth per task.")] = DEFAULTS.max_depth,
    max_subcalls: Annotated[int | None, typer.Option("--max-subcalls", min=0, help="Sub-calls allowed per task.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.1, help="Seconds per task, loading included.")] = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Sub-calls in flight at once per provider, shared by all tasks.")
    ] = DEFAULTS.concurrency,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")] = False,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS", help="Run on a Ray cluster: HOST:PORT, ray://HOST:PORT, auto (RAY_ADDRESS), or local."),
    ] = None,
    ray_num_cpus: Annotated[float, typer.Option("--ray-num-cpus", min=0.01, help="CPUs each task holds on its node.")] = 1.0,
    ray_max_retries: Annotated[
        int, typer.Option("--ray-max-retries", min=0, help="Runs again of a task whose node process died.")
    ] = 3,
    ray_ship_max: Annotated[
        str, typer.Option("--ray-ship-max", help="Local sources up to this size travel with the task; larger must be on shared storage.")
    ] = "5M",
) -> None:
    """Run every task of TASKS (JSONL) and append each result to --output as it ends.

    A task line: {"id": "a", "source": "./repo", "question": "...", "model": "...", "max_iterations": 10}; keys a task does not set take these options. Rerunning with the same --output skips tasks already ok or limit, and runs failed ones again.

    Exit codes: 0 every task answered; 4 a task had a model error; else 3 bad input (a bad line, a missing source); else 1 another failure; else 5 a limit ended a task (or --max-cost stopped the batch); 2 usage; 130 interrupted.
    """
    from rlm_cli.api import Inputs, Limits, Rlm
    from rlm_cli.batch.results import ResultsFile
    from rlm_cli.batch.runner import Batch, LocalRunner, Plan
    from rlm_cli.batch.tasks import Defaults, read_tasks
    from rlm_cli.trace.batch import batch_progress

    with guard():
        results_path = output or tasks.with_name(tasks.name.removesuffix(".jsonl") + ".results.jsonl")
        check_writable(results_path, "-o/--output")
        traces_dir = traces or results_path.with_name(results_path.name.removesuffix(".jsonl") + ".traces")
        defaults = Defaults(
            models=model_flags(model, sub_model, api_base, sub_api_base),
            limits=Limits(max_iterations, max_depth, max_subcalls, None, timeout, cell_timeout, concurrency),
            inputs=Inputs((), tuple(include or ()), tuple(exclude or ()), not no_gitignore, max_file_size),
        )
        found, problems = read_tasks(tasks, defaults)
        plan = Plan(found, problems, str(tasks), traces_dir, max_cost)
        view = None if quiet else batch_progress()
        job = Batch(plan, ResultsFile(results_path), view or _Nowhere())
        try:
            if ray is None:
                summary = asyncio.run(LocalRunner(lambda sinks: Rlm(sinks), jobs or 4, concurrency).run(job))
            else:
                from rlm_cli.batch.on_ray import RayOptions, run_on_ray

                options = RayOptions(ray, ray_num_cpus, ray_max_retries, _size(ray_ship_max), jobs)
                summary = run_on_ray(job, options, Rlm())
        finally:
            if view is not None:
                view.close()
        conclude(summary)


def _size(text: str) -> int:
    from rlm_cli.units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--ray-ship-max: {exc}") from None


class _Nowhere:
    """The sink of a quiet batch."""

    def emit(self, event: object) -> None:
        pass
