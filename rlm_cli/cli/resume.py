"""`rlm resume RUN`: go on with a run that was interrupted or ended by a limit, with fresh budgets.

The conversation is rebuilt from RUN's trajectory, its REPL variables are restored, and the loop
goes on; a new trajectory records the resumed run. Sources and answer options are RUN's; the
models too, unless given. Exit codes as for `rlm ask`; also 2 for a RUN that ended with an answer
and 3 for an unknown or unreadable RUN, or one whose sources are gone.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.ask import print_outcome
from rlm_cli.cli.options import (
    DEFAULTS,
    ApiBase,
    AsJson,
    CellTimeout,
    Concurrency,
    MaxConcurrency,
    MaxCost,
    MaxDepth,
    MaxIterations,
    MaxSubcalls,
    Model,
    Output,
    Quiet,
    SubApiBase,
    SubModel,
    Timeout,
    Trace,
    model_flags,
)
from rlm_cli.paths import check_writable


@app.command(no_args_is_help=True)
def resume(
    run: Annotated[str, typer.Argument(help="The run to go on with: an id (see `rlm runs`), a trajectory path, or `last`.")],
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    max_iterations: MaxIterations = DEFAULTS.max_iterations,
    max_depth: MaxDepth = DEFAULTS.max_depth,
    max_subcalls: MaxSubcalls = None,
    max_cost: MaxCost = None,
    timeout: Timeout = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
    concurrency: Concurrency = DEFAULTS.concurrency,
    max_concurrency: MaxConcurrency = DEFAULTS.max_concurrency,
    as_json: AsJson = False,
    output: Output = None,
    quiet: Quiet = False,
    trace: Trace = None,
) -> None:
    """Go on with RUN (interrupted, or ended by a limit or an error): its conversation and REPL variables, fresh budgets.

    Sub-calls RUN finished are answered from the sub-call cache, not paid for again.

    Exit codes: 0 answer, 2 usage (RUN ended with an answer), 3 input (RUN unknown or unreadable, its sources gone), 4 model, 5 a limit ended the run, 130 interrupted.
    """
    from rlm_cli.api import Limits, ResumeRequest

    with guard():
        if output is not None:
            check_writable(output, "-o/--output")
        limits = Limits(max_iterations, max_depth, max_subcalls, max_cost, timeout, cell_timeout, concurrency, max_concurrency)
        request = ResumeRequest(run, limits, model_flags(model, sub_model, api_base, sub_api_base), trace)
        print_outcome(lambda rlm: rlm.resume(request), as_json, output, quiet)
