"""The library API: what `rlm ask`, `rlm repl` and `rlm inspect` do, for scripts.

    from rlm_cli.api import ask
    print(ask("./repo", "Where is the config file parsed?", model="gpt-4o-mini").answer)

or, with every option and a sink that sees each event:

    from rlm_cli.api import AskRequest, Inputs, Limits, ModelFlags, Rlm
    rlm = Rlm(sinks=[my_sink])
    result = rlm.ask(AskRequest(Inputs(("./repo",)), "...", ModelFlags(model="gpt-4o-mini"), Limits(max_iterations=10)))

A follow-up is `AskRequest(Inputs(()), "...", follow_up="last")` (the earlier run's sources,
questions and answers, and REPL variables); `rlm.resume(ResumeRequest("last", Limits(...)))` goes
on with an interrupted run.

`Rlm.ask` returns an `AskResult` (status `ok` or `limit`) or raises an `RlmError` carrying the
partial result as `exc.result`; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlm_cli.api.models import ModelSession
from rlm_cli.api.requests import AskRequest, Inputs, ReplRequest, ResumeRequest
from rlm_cli.api.results import AskResult
from rlm_cli.api.rlm import Rlm
from rlm_cli.budget import Limits
from rlm_cli.events import Sink
from rlm_cli.settings import ModelFlags

__all__ = ["AskRequest", "AskResult", "Inputs", "Limits", "ModelFlags", "ModelSession", "ReplRequest", "ResumeRequest", "Rlm", "ask"]


def ask(
    sources: str | Sequence[str],
    question: str,
    *,
    model: str | None = None,
    sub_model: str | None = None,
    api_base: str | None = None,
    limits: Limits | None = None,
    sinks: Sequence[Sink] = (),
) -> AskResult:
    """One question about one or more sources, with the CLI's defaults for everything else."""
    named = (sources,) if isinstance(sources, str) else tuple(sources)
    request = AskRequest(Inputs(named), question, ModelFlags(model, sub_model, api_base), limits or Limits())
    return Rlm(sinks).ask(request)
