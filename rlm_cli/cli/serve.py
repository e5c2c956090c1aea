"""`rlm serve`: an OpenAI-compatible endpoint on loopback that answers big requests with the RLM loop."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.options import DEFAULTS, ApiBase, CellTimeout, Model, SubApiBase, SubModel, model_flags
from rlm_cli.errors import UsageError


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs --api-key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8700,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="RLM_SERVE_API_KEY", help="Require `Authorization: Bearer KEY` (env RLM_SERVE_API_KEY).")
    ] = None,
    threshold: Annotated[
        str, typer.Option("--threshold", help="Message text above this many characters (200k = 200,000) goes to the RLM loop; less passes straight to the root model.")
    ] = "200k",
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
    max_iterations: Annotated[int, typer.Option("--max-iterations", min=1, help="Root model turns per request.")] = DEFAULTS.max_iterations,
    max_subcalls: Annotated[int | None, typer.Option("--max-subcalls", min=0, help="Sub-calls allowed per request.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0, help="Stop a request when it has cost this much (USD).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.1, help="Seconds for one request.")] = None,
    cell_timeout: CellTimeout = DEFAULTS.cell_timeout,
) -> None:
    """An OpenAI-compatible endpoint (/v1/chat/completions, /v1/models) on 127.0.0.1.

    Requests whose messages are larger than --threshold are answered by the RLM loop with the messages as `context`; smaller ones go straight to the root model. Point an agent's base URL at http://127.0.0.1:PORT/v1.
    """
    from rlm_cli.api import Limits, Rlm
    from rlm_cli.serve import ServeOptions
    from rlm_cli.serve import serve as run_server
    from rlm_cli.units import parse_size

    with guard():
        try:
            chars = parse_size(threshold)
        except ValueError as exc:
            raise UsageError(f"--threshold: {exc}") from None
        limits = Limits(max_iterations=max_iterations, max_subcalls=max_subcalls, max_cost=max_cost, timeout=timeout, cell_timeout=cell_timeout)
        options = ServeOptions(host, port, api_key, chars, limits)
        run_server(Rlm(), model_flags(model, sub_model, api_base, sub_api_base), options, sys.stderr)
