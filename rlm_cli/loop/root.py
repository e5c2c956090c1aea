"""The root loop: ask the root model, run the cells it writes, feed back what they printed.

The loop owns no I/O of its own: it is handed a model client, a worker, a sub-call runner and a
sink, and emits events. It stops when executed code calls FINAL/FINAL_VAR, when iterations run
out (after one last turn asking for the best answer), or when a limit raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_cli.budget import Budget
from rlm_cli.events import Cell, CellStart, RootResponse, Sink, Usage
from rlm_cli.loop.parsing import code_blocks, prose
from rlm_cli.loop.prompts import FIRST_TURN, LAST_TURN, NO_CODE_TURN, OUTPUT_TURN, PromptProfile, system_prompt
from rlm_cli.model_client import ModelClient
from rlm_cli.subcalls import SubcallRunner
from rlm_cli.worker.process import CellOutcome, WorkerProcess
from rlm_cli.worker.protocol import LlmRequest


@dataclass(frozen=True)
class LoopResult:
    answer: str | None
    status: str  # ok | limit
    iterations: int
    reason: str | None = None  # why a limit ended it


class RootLoop:
    def __init__(
        self,
        client: ModelClient,
        worker: WorkerProcess,
        runner: SubcallRunner,
        budget: Budget,
        sink: Sink,
        profile: PromptProfile,
        *,
        sub_chars: int,
        depth: int = 0,
    ) -> None:
        self._client = client
        self._worker = worker
        self._runner = runner
        self._budget = budget
        self._sink = sink
        self._profile = profile
        self._sub_chars = sub_chars
        self._depth = depth
        self._cell_id = 0

    async def run(self, question: str) -> LoopResult:
        limits = self._budget.limits
        system = system_prompt(self._profile, self._client.model, self._worker.describe, self._sub_chars)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": FIRST_TURN.format(question=question, budget=self._budget.summary(1))},
        ]
        for iteration in range(1, limits.max_iterations + 2):
            last_chance = iteration > limits.max_iterations
            reply = await self._ask(messages, iteration)
            messages.append({"role": "assistant", "content": reply})
            blocks = code_blocks(reply)
            if not blocks:
                if last_chance:
                    return LoopResult(prose(reply) or None, "limit", iteration - 1, "iteration limit reached")
                messages.append({"role": "user", "content": NO_CODE_TURN.format(budget=self._budget.summary(iteration + 1))})
                continue
            shown: list[str] = []
            for code in blocks:
                outcome = await self._run_cell(code, iteration)
                if outcome.final is not None:
                    return LoopResult(outcome.final, "ok", iteration)
                shown.append(self._feedback(outcome))
            self._budget.check_cost()
            if last_chance:
                break
            turn = OUTPUT_TURN.format(outputs="\n\n".join(shown), budget=self._budget.summary(iteration + 1))
            if iteration == limits.max_iterations:
                turn = "\n\n".join(shown) + "\n\n" + LAST_TURN
            messages.append({"role": "user", "content": turn})
        return LoopResult(None, "limit", limits.max_iterations, "iteration limit reached")

    async def _ask(self, messages: list[dict[str, str]], iteration: int) -> str:
        self._budget.check_cost()
        completion = await self._client.complete(messages)
        usage = Usage(completion.input_tokens, completion.output_tokens, completion.cost_usd)
        self._budget.charge(usage)
        self._budget.root_calls += 1
        self._sink.emit(RootResponse(iteration, completion.text, usage, completion.duration_s, completion.faults, self._depth))
        return completion.text

    async def _run_cell(self, code: str, iteration: int) -> CellOutcome:
        self._cell_id += 1
        cell_id = self._cell_id
        self._sink.emit(CellStart(cell_id, iteration, code, self._depth))

        async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
            return await self._runner.handle(request, cell_id, self._depth)

        outcome = await self._worker.execute(
            cell_id,
            code,
            timeout=self._cell_timeout(),
            max_output_chars=self._profile.max_output_chars,
            on_llm=on_llm,
        )
        self._sink.emit(
            Cell(
                cell_id=cell_id,
                iteration=iteration,
                code=code,
                output=self._feedback(outcome),
                truncated=outcome.output_chars > len(outcome.output),
                output_chars=outcome.output_chars,
                duration_s=outcome.duration_s,
                error=outcome.error,
                final=outcome.final is not None,
                depth=self._depth,
            )
        )
        return outcome

    def _cell_timeout(self) -> float:
        remaining = self._budget.remaining_time()
        timeout = self._budget.limits.cell_timeout
        return timeout if remaining is None else min(timeout, remaining + 1.0)

    def _feedback(self, outcome: CellOutcome) -> str:
        """A cell's result as the model is shown it, including what happened outside Python."""
        notes: list[str] = []
        if outcome.timed_out:
            notes.append(f"[the cell ran past the {self._budget.limits.cell_timeout:g} s cell time limit and was interrupted]")
        if outcome.crash:
            notes.append(f"[the REPL process died: it {outcome.crash}]")
        if outcome.restarted:
            notes.append("[the REPL was restarted: your variables are gone; `context` and the REPL functions are back]")
        if outcome.restored:
            names = ", ".join(f"`{n}`" for n in outcome.restored)
            notes.append(f"[you overwrote {names}; the original was restored. Use other names.]")
        body = outcome.output.rstrip() or ("(no output)" if not notes else "")
        return "\n".join(part for part in (body, *notes) if part)
