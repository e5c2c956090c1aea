"""`rlm ask --dry-run`: what a run would read and send, and what it might cost; no model call.

The sources are loaded and the code graph built exactly as a run does; the root prompt (system
prompt and first turn) is composed by the same functions the loop uses, from the same summary of
the context, so its size is the size the model would get. Tokens are counted with the model's
own tokenizer where tiktoken has one, else estimated at 4 characters per token.

The cost is a range, from litellm's price table:
- low: one root turn (the prompt in, a short reply out) and no sub-calls, a question code
  alone answers;
- high: every root turn `--max-iterations` allows, each seeing the conversation so far with a
  full cell output added per turn, plus sub-calls that read the whole input once.
A run can cost more (sub-calls that read the input several times), rarely less than low.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rlm_cli.budget import Budget, Limits
from rlm_cli.codegraph import build_code_index
from rlm_cli.dryrun.prices import ModelPrice, TokenCount, count_tokens, price_for, warm_up
from rlm_cli.engine import prompt_code_summary, sub_chars_for
from rlm_cli.loop.prompts import OPENING_OUTPUT_CHARS, first_turn, opens_with_search, profile_for, system_prompt
from rlm_cli.sources.context import Context
from rlm_cli.sources.loader import LoadedSources, Skipped
from rlm_cli.sources.summary import ContextSummary
from rlm_cli.units import CHARS_PER_TOKEN

if TYPE_CHECKING:
    from rlm_cli.api import AskRequest
    from rlm_cli.settings import Settings

REPLY_TOKENS = 400  # a root reply: a few lines of prose and a cell
SUB_REPLY_TOKENS = 300  # a sub-call's answer


@dataclass(frozen=True)
class CostRange:
    low: float | None
    high: float | None

    def __add__(self, other: CostRange) -> CostRange:
        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return CostRange(add(self.low, other.low), add(self.high, other.high))


@dataclass(frozen=True)
class DryRun:
    sources: tuple[str, ...]
    files: tuple[tuple[str, int], ...]  # path, characters
    skipped: tuple[Skipped, ...]
    chars: int
    tokens: TokenCount
    prompt: str  # the system prompt and the first user turn, as the root model would get them
    prompt_tokens: TokenCount
    root: ModelPrice
    sub: ModelPrice
    root_cost: CostRange
    sub_cost: CostRange
    max_iterations: int
    profile: str
    code: dict[str, Any] | None  # the code graph's counts, as the prompt states them; None for no code

    @property
    def cost(self) -> CostRange:
        return self.root_cost + self.sub_cost

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "sources": list(self.sources),
            "files": [{"path": p, "chars": n} for p, n in self.files],
            "skipped": [asdict(s) for s in self.skipped],
            "chars": self.chars,
            "tokens": asdict(self.tokens),
            "prompt": {"chars": len(self.prompt), **asdict(self.prompt_tokens), "profile": self.profile, "text": self.prompt},
            "code": self.code,
            "models": {"root": asdict(self.root), "sub": asdict(self.sub)},
            "cost_usd": {
                "root": asdict(self.root_cost),
                "sub": asdict(self.sub_cost),
                "total": asdict(self.cost),
                "max_iterations": self.max_iterations,
            },
        }

    def as_text(self, max_files: int = 20) -> str:
        lines = [f"sources: {', '.join(self.sources)}", f"files: {len(self.files):,} kept, {len(self.skipped):,} skipped"]
        for path, chars in self.files[:max_files]:
            lines.append(f"  {path}  {chars:,} chars")
        if len(self.files) > max_files:
            lines.append(f"  ... {len(self.files) - max_files:,} more")
        by_reason: dict[str, list[str]] = {}
        for s in self.skipped:
            by_reason.setdefault(s.reason, []).append(s.path)
        for reason, paths in by_reason.items():
            more = f", ... ({len(paths) - 3:,} more)" if len(paths) > 3 else ""
            lines.append(f"  skipped {len(paths):,} ({reason}): {', '.join(paths[:3])}{more}")
        lines.append(f"input: {self.chars:,} characters, {self.tokens.tokens:,} tokens ({self.tokens.method})")
        if self.code:
            languages = ", ".join(f"{lang} {n:,}" for lang, n in self.code["languages"].items())
            lines.append(
                f"code graph: {self.code['parsed_files']:,} files ({languages}), {self.code['symbols']:,} symbols,"
                f" built in {self.code['index_time_s']:.2f} s"
            )
        lines.append(
            f"root prompt: {len(self.prompt):,} characters, {self.prompt_tokens.tokens:,} tokens"
            f" ({self.profile} prompt; the input itself is never in it)"
        )
        lines.append(f"root model {self.root.model}: {_price(self.root)}")
        lines.append(f"sub model {self.sub.model}: {_price(self.sub)}")
        lines.append(f"estimated cost: root {_range(self.root_cost)} (1 to {self.max_iterations} turns)")
        lines.append(f"                sub-calls {_range(self.sub_cost)} (none, to reading the whole input once)")
        lines.append(f"                total {_range(self.cost)}")
        return "\n".join(lines)


def _price(p: ModelPrice) -> str:
    if p.key == "local":
        return "local, free"
    if p.input_per_token is None:
        return "not in litellm's price table: cost unknown"
    window = f", window {p.max_input_tokens:,} tokens" if p.max_input_tokens else ""
    per_m = 1_000_000
    return f"${p.input_per_token * per_m:.2f} in / ${(p.output_per_token or 0) * per_m:.2f} out per million tokens{window}"


def _range(c: CostRange) -> str:
    if c.low is None or c.high is None:
        return "unknown"
    return f"${c.low:.4f} – ${c.high:.4f}"


def context_summary(loaded: LoadedSources) -> ContextSummary:
    """What the prompt says about the context, as the engine composes it for the worker
    (`Run.worker`): the context's own summary, the code graph's counts, the repository."""
    code = prompt_code_summary(build_code_index(loaded.files).summary())
    return ContextSummary.of(loaded.files, code, loaded.repository)


def plan(
    loaded: LoadedSources,
    question: str,
    model: str,
    sub_model: str,
    limits: Limits,
    describe: ContextSummary,
    profile_name: str | None = None,
) -> DryRun:
    """The figures of a dry run; `describe` is the context summary the prompt states."""
    root, sub = price_for(model), price_for(sub_model)
    text = Context(loaded.files)
    tokens = count_tokens(text, model)
    profile = profile_for(model, profile_name)
    sub_chars = sub_chars_for(sub.max_input_tokens)
    code = describe.code is not None
    opening = f"[the opening search's passages, up to {OPENING_OUTPUT_CHARS:,} characters]" if opens_with_search(profile, question, code=code) else ""
    first = first_turn(profile, question, Budget(limits).summary(1), code=code, opening=opening)
    prompt = system_prompt(profile, model, describe, sub_chars) + "\n" + first
    prompt_tokens = count_tokens(prompt, model)

    turns = limits.max_iterations
    growth = REPLY_TOKENS + profile.max_output_chars // CHARS_PER_TOKEN  # each turn adds a reply and an output
    high_in = sum(prompt_tokens.tokens + k * growth for k in range(turns))
    root_cost = CostRange(root.cost(prompt_tokens.tokens, REPLY_TOKENS), root.cost(high_in, turns * REPLY_TOKENS))
    sub_tokens = tokens if sub_model == model else count_tokens(text, sub_model)
    calls = math.ceil(len(text) / sub_chars) if text else 0
    sub_cost = CostRange(0.0 if sub.input_per_token is not None else None, sub.cost(sub_tokens.tokens, calls * SUB_REPLY_TOKENS))
    return DryRun(
        sources=loaded.sources,
        files=tuple((path, len(body)) for path, body in loaded.files.items()),
        skipped=loaded.skipped,
        chars=len(text),
        tokens=tokens,
        prompt=prompt,
        prompt_tokens=prompt_tokens,
        root=root,
        sub=sub,
        root_cost=root_cost,
        sub_cost=sub_cost,
        max_iterations=turns,
        profile=profile.name,
        code=asdict(describe.code) if describe.code else None,
    )


def dry_run(request: AskRequest, settings: Settings) -> DryRun:
    """The dry run of `request`: its sources loaded and indexed as a run would, no model called."""
    question = request.checked_question()
    warm_up(settings.models.model)  # the tokenizer loads while the sources do
    loaded = request.inputs.load()
    return plan(
        loaded, question, settings.models.model, settings.models.sub_model, request.limits, context_summary(loaded), settings.profile
    )
