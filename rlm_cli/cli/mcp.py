"""`rlm mcp`: serve the `ask` and `inspect` tools to an MCP client over stdio."""

from __future__ import annotations

from rlm_cli.cli.app import app, guard
from rlm_cli.cli.options import ApiBase, Model, SubApiBase, SubModel, model_flags
from rlm_cli.errors import UsageError


@app.command()
def mcp(
    model: Model = None,
    sub_model: SubModel = None,
    api_base: ApiBase = None,
    sub_api_base: SubApiBase = None,
) -> None:
    """An MCP server over stdio (tools: ask, inspect, runs, show). The model options are defaults for calls that name none.

    Register it in an MCP client as the command `rlm mcp`; it needs the `mcp` extra (pip install 'rlm-cli[mcp]').
    """
    with guard():
        try:
            from rlm_cli.mcp_server import serve_stdio
        except ImportError as exc:
            raise UsageError(f"rlm mcp needs the MCP SDK: pip install 'rlm-cli[mcp]' ({exc})") from None
        serve_stdio(model_flags(model, sub_model, api_base, sub_api_base))
