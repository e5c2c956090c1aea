"""The root loop: ask the root model, run the cells it writes, feed back what they printed.

The loop owns no I/O of its own: it is handed a model client, a worker, a sub-call runner and a
sink, and emits events. It stops when executed code calls FINAL/FINAL_VAR, when iterations run
out (after one last turn asking for the best answer), or when a limit raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_cli.answers import AnswerCheck, FinalAnswer, Verdict
from rlm_cli.budget import Budget
from rlm_cli.events import Cell, CellStart, Message, RootResponse, Sink, Usage
from rlm_cli.loop.grounding import found_nothing, not_found, supported
from rlm_cli.loop.parsing import code_blocks, prose
from rlm_cli.loop.prompts import (
    LAST_TURN,
    NO_CODE_TURN,
    OPENING_OUTPUT_CHARS,
    REPEATED,
    SMALL_READ_AGAIN_TURN,
    SMALL_SCAN_EMPTY_TURN,
    SMALL_STILL_NOTHING_TURN,
    STALLED_TURN,
    SUBCALLS_SPENT_TURN,
    UNSUPPORTED_TURN,
    PromptProfile,
    chunk_chars,
    definition_reading,
    first_turn,
    opening_code,
    opens_with_search,
    read_code,
    reading_answer,
    scan_code,
    system_prompt,
)
from rlm_cli.model_client import ModelClient
from rlm_cli.subcalls import Scope, SubcallRunner
from rlm_cli.worker.process import CellOutcome, WorkerProcess
from rlm_cli.worker.protocol import LlmRequest

# Said before the next turn when a root reply hit the output limit (finish_reason "length").
TRUNCATED_TURN = (
    "[Your previous reply was cut off at the output limit; a code block it left unfinished did not"
    " run. Write shorter replies: one short ```repl block at a time.]\n\n"
)


@dataclass(frozen=True)
class LoopResult:
    answer: str | None
    status: str  # ok | limit
    iterations: int
    reason: str | None = None  # why a limit ended it
    usage: Usage = Usage()  # this loop's turns and every sub-call its cells made
    verdict: Verdict | None = None  # the checked answer, with --schema / --cite


OLD_OUTPUT_CHARS = 400


def compacted(messages: list[dict[str, str]], full_turns: int | None) -> list[dict[str, str]]:
    """The conversation with cell outputs older than the last `full_turns` shortened.

    Small models have small windows; the variables in the REPL still hold everything, so an old
    output can be printed again if it matters.
    """
    if full_turns is None:
        return messages
    outputs = [i for i, m in enumerate(messages) if m["role"] == "user"][1:]  # not the question
    old = set(outputs[: max(0, len(outputs) - full_turns)])
    return [
        {**m, "content": m["content"][:OLD_OUTPUT_CHARS] + "\n[older output shortened]"}
        if i in old and len(m["content"]) > OLD_OUTPUT_CHARS
        else m
        for i, m in enumerate(messages)
    ]


def _short(answer: str, limit: int = 200) -> str:
    """An answer as a Python literal, cut to `limit` characters for a prompt."""
    text = repr(answer)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


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
        parent: int | None = None,
        check: AnswerCheck | None = None,
    ) -> None:
        self._client = client
        self._worker = worker
        self._runner = runner
        self._budget = budget
        self._sink = sink
        self._profile = profile
        self._sub_chars = sub_chars
        self._depth = depth
        self._parent = parent
        self._check = check
        self._corrections = 1  # turns a FINAL that fails the check gets to mend it
        self._looks = 1  # turns a FINAL nothing printed supports gets (grounded profiles)
        self._scan_suggested = False  # the loop has scanned every piece (once per run)
        self._read: str | None = None  # the first turn's reading, when it answered: the helper's, or over code the definition around the best hit
        self._printed: list[str] = []  # every cell output the model was shown
        self._cell_id = 0
        self.iterations = 0  # root turns whose reply was acted on; read after a failure too
        self.usage = Usage()

    async def run(self, question: str, history: list[dict[str, str]] | None = None) -> LoopResult:
        """`history`: earlier turns that follow the system prompt (a follow-up's questions and
        answers, a resumed run's conversation); when it ends with a user turn, the model answers
        that turn instead of a first turn for `question`."""
        limits = self._budget.limits
        system = system_prompt(self._profile, self._client.model, self._worker.summary, self._sub_chars)
        messages: list[dict[str, str]] = []
        self._send(messages, "system", system, 1)
        for earlier in history or ():
            self._send(messages, earlier["role"], earlier["content"], 1)
        if not history or history[-1]["role"] != "user":
            self._send(messages, "user", await self._first_turn(question), 1)
        ran: set[str] = set()  # code run so far
        said: set[str] = set()  # replies with no code so far
        repeats = 0
        # Once a limit is reached the model gets one last turn; what it answers then is the best
        # partial answer of a run a limit ended (status "limit"), even when it calls FINAL. A model
        # that keeps repeating itself gets a last turn too, but no limit ended its run: its FINAL
        # then is an answer like any other; only prose is a partial one.
        forced: str | None = None
        stalled = False
        for iteration in range(1, limits.max_iterations + 2):
            last_chance = forced is not None
            reply, truncated = await self._ask(messages, iteration)
            messages.append({"role": "assistant", "content": reply})
            cut = TRUNCATED_TURN if truncated else ""
            blocks = code_blocks(reply)
            if not blocks:
                if last_chance:
                    return self._result(prose(reply) or self._partial(), forced)
                self.iterations = iteration
                if reply.strip() in said:
                    repeats += 1
                said.add(reply.strip())
                turn = NO_CODE_TURN.format(budget=self._budget.summary(iteration + 1))
                if iteration >= limits.max_iterations:
                    forced, turn = "iteration limit reached", f"{turn}\n\n{LAST_TURN}"
                elif repeats >= self._profile.max_repeats:
                    forced, stalled = "stopped after the model repeated the same reply", True
                    turn = f"{turn}\n\n{STALLED_TURN}"
                self._send(messages, "user", cut + turn, iteration + 1)
                continue
            self.iterations = iteration
            refused = self._budget.subcalls_refused
            shown: list[str] = []
            nothing: list[bool] = []  # per block: it found nothing
            correction: str | None = None
            for number, code in enumerate(blocks, 1):
                outcome, feedback = await self._run_cell(code, iteration)
                self._printed.append(feedback)
                if outcome.final is not None:
                    verdict = self._verdict(outcome)
                    if verdict is not None and verdict.errors:
                        if self._corrections and not last_chance:
                            self._corrections -= 1
                            correction = f"{feedback}\n\n{verdict.correction()}"
                            break
                        why = "the answer does not satisfy --schema: " + "; ".join(verdict.errors)
                        return LoopResult(outcome.final, "limit", self.iterations, why, self.usage, verdict)
                    look = None if last_chance else await self._second_look(outcome.final, feedback, question, iteration)
                    if look is not None:
                        correction = look
                        break
                    if forced is None and self._budget.subcalls_refused > refused:
                        forced = self._budget.subcall_limit_text()
                    return self._result(outcome.final, None if stalled else forced, verdict)
                nothing.append(found_nothing(feedback))
                if code.strip() in ran:
                    repeats += 1
                    feedback = f"{feedback}\n{REPEATED}"
                ran.add(code.strip())
                shown.append(f"[block {number} of {len(blocks)}]\n{feedback}" if len(blocks) > 1 else feedback)
            self._budget.check_cost()
            if correction is not None:
                self._send(messages, "user", cut + correction, iteration + 1)
                continue
            if last_chance:
                break
            outputs = "\n\n".join(shown)
            empty = self._profile.nothing_turn is not None and bool(nothing) and all(nothing)
            if self._budget.subcalls_refused > refused:
                forced = self._budget.subcall_limit_text()
                turn = f"{outputs}\n\n{SUBCALLS_SPENT_TURN}"
            elif iteration >= limits.max_iterations:
                forced = "iteration limit reached"
                turn = f"{outputs}\n\n{LAST_TURN}"
            elif self._scan_due(empty, repeats) or (empty and repeats < self._profile.max_repeats):
                # the scan comes before the repeat check, so a repeat cannot skip it
                turn = await self._nothing_turn(f"Your code printed:\n{outputs}", question, iteration)
            elif repeats >= self._profile.max_repeats:
                forced, stalled = "stopped after the model repeated the same code", True
                turn = self._stalled_turn(outputs, question, empty)
            else:
                turn = self._profile.output_turn.format(
                    outputs=outputs, question=question, budget=self._budget.summary(iteration + 1)
                )
            self._send(messages, "user", cut + turn, iteration + 1)
        return self._result(self._partial(), forced or "iteration limit reached")

    def _partial(self) -> str | None:
        """The best partial answer of a run a limit ended with no prose answer: the first turn's
        reading, when it answered (the 1.5B root once ran the reading's name as code, `render_scope`,
        until the loop stopped it)."""
        return reading_answer(self._read) if self._read is not None else None

    def _scan_due(self, empty: bool, repeats: int) -> bool:
        """Whether the loop's scan runs now: once, after a cell that found nothing or a search run
        again (its hits held only the question's everyday words). Not for a repeat over code,
        where the opening printed the code graph's facts and the scan's answers are file paths
        every chunk's header holds, nor after a reading that answered: the answer-now turn
        shows it again."""
        if self._scan_suggested or self._profile.nothing_turn is None:
            return False
        repeat_scans = self._worker.summary.code is None and self._read is None
        return empty or (repeats >= self._profile.max_repeats and repeat_scans)

    def _stalled_turn(self, outputs: str, question: str, empty: bool) -> str:
        """The answer-now turn; after the helper's reading (and a repeat that printed something),
        with the reading and the FINAL taking it: shown the reading and other moves, the 1.5B
        root took the moves."""
        if self._read is None or empty:
            return f"{outputs}\n\n{STALLED_TURN}"
        return SMALL_READ_AGAIN_TURN.format(
            outputs=f"Your code printed:\n{outputs}", read=self._read, question_text=question,
            answer=repr(reading_answer(self._read)),
        )

    async def _nothing_turn(self, outputs: str, question: str, iteration: int) -> str:
        """The turn after cells that found nothing: the first time, the loop scans every piece
        with llm_find and shows what it found; after that, a turn asking for other words."""
        values = {"outputs": outputs, "question_text": question}
        if self._scan_suggested or self._profile.nothing_turn is None:
            return SMALL_STILL_NOTHING_TURN.format(budget=self._budget.summary(iteration + 1), **values)
        self._scan_suggested = True
        code = scan_code(question, chunk_chars(self._profile, self._sub_chars))
        _, scan = await self._run_cell(code, iteration)
        self._printed.append(scan)
        values["budget"] = self._budget.summary(iteration + 1)  # the scan's sub-calls counted
        if found_nothing(scan):
            return SMALL_SCAN_EMPTY_TURN.format(**values)
        return self._profile.nothing_turn.format(code=code, scan=scan, **values)

    async def _read_best_passages(self, question: str) -> None:
        """Keep what the helper's reading of the question's best passages printed, when it
        answered (not a cell that failed: the model is not shown the loop's own tracebacks)."""
        outcome, read = await self._run_cell(read_code(question), 0)
        if outcome.error is None and not (outcome.timed_out or outcome.restarted) and reading_answer(read) is not None:
            self._printed.append(read)
            self._read = read

    async def _second_look(self, answer: str, feedback: str, question: str, iteration: int) -> str | None:
        """The turn a grounded profile's FINAL gets instead of ending the run, once: a "not found"
        before any scan is told to scan; an answer nothing printed shows is asked for its evidence."""
        if not self._profile.grounded or not self._looks:
            return None
        if not_found(answer):
            if self._scan_suggested:
                return None
            self._looks -= 1
            said = f"Your code printed:\n{feedback}\n[FINAL({_short(answer)}) did not end the run: nothing was found yet]"
            return await self._nothing_turn(said, question, iteration)
        if supported(answer, "\n".join(self._printed)):
            return None
        self._looks -= 1
        return f"{feedback}\n\n" + UNSUPPORTED_TURN.format(answer=_short(answer), question_text=question)

    def _result(self, answer: str | None, forced: str | None, verdict: Verdict | None = None) -> LoopResult:
        status = "ok" if forced is None else "limit"
        if verdict is not None:
            answer = verdict.text
        return LoopResult(answer, status, self.iterations, forced, self.usage, verdict)

    def _verdict(self, outcome: CellOutcome) -> Verdict | None:
        if self._check is None or outcome.final is None:
            return None
        return self._check.check(FinalAnswer(outcome.final, outcome.final_json, outcome.sources))

    def _send(self, messages: list[dict[str, str]], role: str, content: str, iteration: int) -> None:
        """Add a system or user message to the conversation, and to the trajectory (for export and follow-ups)."""
        messages.append({"role": role, "content": content})
        self._sink.emit(Message(role, content, iteration, self._depth, self._parent))

    async def _first_turn(self, question: str) -> str:
        opening = ""
        code = self._worker.summary.code is not None
        if opens_with_search(self._profile, question, code=code):
            _, opening = await self._run_cell(opening_code(question, code=code), 0, OPENING_OUTPUT_CHARS)
            self._printed.append(opening)
        if opening and found_nothing(opening):  # no word of the question occurs: go straight to the scan
            said = f"Question: {question}\n\ncontext.search for the question's words printed nothing."
            turn = await self._nothing_turn(said, question, 0)
        else:
            if opening and self._profile.nothing_turn:
                if code:  # the code graph names the definition around the best hit
                    self._read = definition_reading(question, opening)
                else:
                    await self._read_best_passages(question)
            turn = first_turn(
                self._profile, question, self._budget.summary(1), code=code, opening=opening, reading=self._read or ""
            )
        return f"{turn}\n\n{self._check.instructions()}" if self._check is not None else turn

    async def _ask(self, messages: list[dict[str, str]], iteration: int) -> tuple[str, bool]:
        """The root model's reply, and whether it was cut off at the output limit."""
        self._budget.check_cost()
        completion = await self._client.complete(compacted(messages, self._profile.full_turns))
        usage = completion.usage
        self._budget.charge(usage, self._client.model)
        self.usage = self.usage + usage
        self._sink.emit(
            RootResponse(iteration, completion.text, usage, completion.duration_s, completion.faults, self._depth, self._parent)
        )
        return completion.text, completion.finish_reason == "length"

    async def _run_cell(self, code: str, iteration: int, max_output_chars: int | None = None) -> tuple[CellOutcome, str]:
        """Run one cell (iteration 0: the loop's own opening cell) and the feedback the model is shown."""
        self._cell_id += 1
        cell_id = self._cell_id
        self._sink.emit(CellStart(cell_id, iteration, code, self._depth, self._parent))
        scope = Scope(cell_id, self._depth, self._parent)

        async def on_llm(request: LlmRequest) -> list[dict[str, str]]:
            results = await self._runner.handle(request, scope)
            for result in results:
                self.usage = self.usage + result.usage
            return [result.wire() for result in results]

        outcome = await self._worker.execute(
            cell_id,
            code,
            timeout=self._cell_timeout(),
            max_output_chars=max_output_chars or self._profile.max_output_chars,
            on_llm=on_llm,
        )
        feedback = self._feedback(outcome)
        self._sink.emit(
            Cell(
                cell_id=cell_id,
                iteration=iteration,
                code=code,
                output=feedback,
                truncated=outcome.output_chars > len(outcome.output),
                output_chars=outcome.output_chars,
                duration_s=outcome.duration_s,
                error=outcome.error,
                final=outcome.final is not None,
                depth=self._depth,
                parent=self._parent,
            )
        )
        return outcome, feedback

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
