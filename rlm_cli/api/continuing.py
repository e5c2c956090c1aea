"""Follow-ups and resumes as requests: an earlier run's recorded request, made into a new one.

`Rlm.ask` with `AskRequest.follow_up` and `Rlm.resume` both turn the earlier run (read by
rlm_cli.runs.continuation) into an ordinary `AskRequest` plus a `Continuing`: which run it
builds on, and how the conversation starts once the REPL state is restored. `record()` is what
the `origin` record keeps of a request, so the run can be built on in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from rlm_cli.api.requests import AskRequest, Inputs, ResumeRequest
from rlm_cli.runs.continuation import Earlier, absolute_sources, follow_up_history, resume_history
from rlm_cli.settings import ModelFlags
from rlm_cli.sources.git import redact_url
from rlm_cli.worker.protocol import RestoreReply

History = Callable[[RestoreReply | None, str], list[dict[str, str]]]  # (restored, the budget line)


@dataclass(frozen=True)
class Continuing:
    """The earlier run a request builds on: `follows` (a follow-up) or `resumes` it."""

    earlier: Earlier
    how: str  # follows | resumes
    history: History
    same_sources: bool = True  # the earlier run's sources again (a follow-up may name others)


def record(request: AskRequest) -> dict[str, Any]:
    """What a trajectory keeps of `request` to repeat it: local paths absolute, no credentials."""
    inputs = request.inputs
    models = {k: redact_url(v) if v and k.endswith("api_base") else v for k, v in asdict(request.models).items()}
    return {
        "inputs": {
            "sources": [redact_url(source) for source in absolute_sources(inputs.sources)],
            "include": list(inputs.include),
            "exclude": list(inputs.exclude),
            "use_gitignore": inputs.use_gitignore,
            "max_file_size": inputs.max_file_size,
        },
        "models": models,
        "redact": request.redact,
        "no_cache": request.no_cache,
        "schema": request.schema,
        "cite": request.cite,
        "strategy": request.strategy,
    }


def _inputs(earlier: Earlier) -> Inputs:
    recorded = earlier.request.get("inputs") or {}
    sources = [str(s) for s in recorded.get("sources") or []]
    earlier.checked_sources(sources)
    default = Inputs(())
    include, exclude, gitignore, size = (recorded.get(k) for k in ("include", "exclude", "use_gitignore", "max_file_size"))
    return Inputs(
        tuple(sources),
        tuple(map(str, include)) if isinstance(include, list) else default.include,
        tuple(map(str, exclude)) if isinstance(exclude, list) else default.exclude,
        gitignore if isinstance(gitignore, bool) else default.use_gitignore,
        size if isinstance(size, str) else default.max_file_size,
    )


def _models(given: ModelFlags, earlier: Earlier) -> ModelFlags:
    """The flags given, or (none given) the earlier run's: a mix of both would pair a new model with an old server."""
    recorded = earlier.request.get("models")
    if given != ModelFlags() or not isinstance(recorded, dict):
        return given
    return ModelFlags(**{k: v for k, v in recorded.items() if k in asdict(given) and (v is None or isinstance(v, str))})


def follow_up(request: AskRequest) -> tuple[AskRequest, Continuing]:
    """A follow-up on `request.follow_up`: its sources unless the request names some, its models unless given."""
    assert request.follow_up is not None
    earlier = Earlier.load(request.follow_up)
    inputs = request.inputs if request.inputs.sources else _inputs(earlier)
    chain = earlier.chain()
    asked = replace(request, inputs=inputs, models=_models(request.models, earlier))
    history: History = lambda restored, budget: follow_up_history(chain, restored)
    return asked, Continuing(earlier, "follows", history, same_sources=not request.inputs.sources)


def resume(request: ResumeRequest) -> tuple[AskRequest, Continuing]:
    """The earlier run's request again, with the fresh limits (and any models) of `request`."""
    earlier = Earlier.load(request.run)
    messages = earlier.resumable()
    recorded = earlier.request
    asked = AskRequest(
        _inputs(earlier),
        earlier.question,
        _models(request.models, earlier),
        request.limits,
        request.trace,
        redact=recorded.get("redact") if isinstance(recorded.get("redact"), bool) else None,
        no_cache=recorded.get("no_cache") is True,
        schema=recorded.get("schema") if isinstance(recorded.get("schema"), dict) else None,
        cite=recorded.get("cite") is True,
        strategy="rlm",
    )
    return asked, Continuing(earlier, "resumes", lambda restored, budget: resume_history(earlier, messages, restored, budget))
