"""Building on an earlier run: what `rlm ask -c` (a follow-up) and `rlm resume` take from its trajectory.

`Earlier.load(RUN)` reads the trajectory (damaged lines skipped and counted) and refuses, with an
`InputError` (exit 3), one that holds no `run_start`. From it come the request to repeat (the
`origin` record: sources with absolute paths, filters, model flags, answer options; runs recorded
before it existed give their `run_start` sources), the state file the run left, and its
question and answer. `follow_up_history` puts the earlier questions and answers (the chain of
follow-ups, newest last, each shortened) before the new question; `resume_history` rebuilds the
conversation as it was sent, so the loop goes on from its last turn. Both end by telling the
model which variables came back into the REPL (`variables_note`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_cli.errors import InputError, UsageError
from rlm_cli.loop.parsing import code_blocks
from rlm_cli.runs.export import conversation
from rlm_cli.runs.records import Trajectory, read_run
from rlm_cli.runs.state import open_state
from rlm_cli.runs.store import resolve
from rlm_cli.sources.git import is_git_url
from rlm_cli.units import format_size
from rlm_cli.worker.protocol import RestoreReply

CHAIN_RUNS = 5  # earlier questions and answers a follow-up is shown, newest last
QUESTION_CHARS = 1_000
ANSWER_CHARS = 2_000
RESUMABLE = ("interrupted", "limit", "error")


def digest(files: Mapping[str, str]) -> str:
    """A hash of the loaded files (paths and texts), to tell later whether they changed."""
    h = hashlib.sha256()
    for path, text in files.items():
        h.update(path.encode("utf-8", "surrogatepass") + b"\0")
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _remote(source: str) -> bool:
    return is_git_url(source) or source.startswith(("http://", "https://"))


def absolute_sources(sources: tuple[str, ...]) -> list[str]:
    """Sources as a later run can find them from any directory: local paths made absolute."""
    return [s if s == "-" or _remote(s) else os.path.abspath(s) for s in sources]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit:,} more characters]"


@dataclass(frozen=True)
class Earlier:
    """An earlier run, read back from its trajectory."""

    trajectory: Trajectory

    @classmethod
    def load(cls, run: str) -> Earlier:
        trajectory = read_run(resolve(run))
        if trajectory.first("run_start") is None:
            raise InputError(f"{trajectory.path} holds no run_start record: it cannot be continued")
        return cls(trajectory)

    @property
    def id(self) -> str:
        return self.trajectory.id

    @property
    def origin(self) -> dict[str, Any]:
        return self.trajectory.first("origin") or {}

    @property
    def request(self) -> dict[str, Any]:
        """The request the run was made with; for runs recorded before `origin`, its sources only."""
        start = self.trajectory.first("run_start") or {}
        request = self.origin.get("request")
        return request if isinstance(request, dict) else {"inputs": {"sources": list(start.get("sources") or [])}}

    @property
    def question(self) -> str:
        return str((self.trajectory.first("run_start") or {}).get("question") or "")

    @property
    def status(self) -> str:
        end = self.trajectory.last("run_end")
        return str(end.get("status") or "error") if end else "interrupted"

    @property
    def why(self) -> str:
        """Why the run stopped, in words: its run_end error, or how it ended."""
        end = self.trajectory.last("run_end")
        error = end.get("error") if end else "no run_end record: it was interrupted or killed"
        return str(error or self.status)

    @property
    def answer(self) -> str | None:
        final = self.trajectory.last("final")
        answer = final.get("answer") if final else None
        return None if answer is None else str(answer)

    def state(self) -> tuple[int | None, str | None]:
        """An open descriptor of the state file the run left, or None and why there is none."""
        record = self.trajectory.last("state")
        if record is None or not record.get("file"):
            return None, f"run {self.id} left no REPL state (it answered without the REPL, or was killed before it could keep it)"
        path = self.trajectory.path.parent / Path(str(record["file"])).name
        fd = open_state(path)
        return fd, None if fd is not None else f"the REPL state of run {self.id} ({path}) is missing or too large"

    def chain(self) -> list[tuple[str, str]]:
        """The questions and answers of this run and the runs it follows up, oldest first."""
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        run: Earlier | None = self
        while run is not None and len(pairs) < CHAIN_RUNS and str(run.trajectory.path) not in seen:
            seen.add(str(run.trajectory.path))
            answer = run.answer if run.answer is not None else f"(no answer: the run ended so: {run.why})"
            pairs.insert(0, (_short(run.question, QUESTION_CHARS), _short(answer, ANSWER_CHARS)))
            follows = run.origin.get("follows")
            try:
                run = Earlier.load(str(follows)) if follows else None
            except InputError:  # an older link pruned away: the chain ends there
                run = None
        return pairs

    def checked_sources(self, sources: list[str]) -> None:
        """InputError (exit 3) when a local source of the run is gone; stdin cannot be read again."""
        for source in sources:
            if source == "-":
                raise InputError(f"run {self.id} read its input from stdin, which cannot be read again: give SOURCE (rlm ask -c {self.id} SOURCE QUESTION)")
            if not _remote(source) and not os.path.exists(source):
                raise InputError(f"{source}, a source of run {self.id}, is gone")

    def resumable(self) -> list[dict[str, str]]:
        """The conversation to resume; UsageError for a run that answered, InputError for one without prompts."""
        if self.status not in RESUMABLE:
            raise UsageError(f"run {self.id} ended with an answer (status {self.status}); ask a follow-up with `rlm ask -c {self.id} QUESTION`")
        messages = conversation(self.trajectory)
        if not messages or messages[0]["role"] != "system" or len(messages) < 2:
            raise InputError(f"run {self.id} cannot be resumed: its trajectory does not hold the conversation (recorded by an older rlm, or damaged)")
        return messages


def variables_note(restored: RestoreReply | None) -> str:
    """What the model is told about the variables of the earlier run."""
    if restored is None:
        return "[The REPL holds no variables of the earlier run.]"
    if restored.error is not None:
        return "[The variables of the earlier run could not be restored: compute again what you need.]"
    if not restored.restored:
        note = "[The REPL holds no variables of the earlier run."
    else:
        shown = ", ".join(f"{v['name']} ({v['type']}, {format_size(int(v['nbytes']))})" for v in restored.restored)
        note = f"[The REPL still holds the variables the earlier run left: {shown}."
    if restored.skipped:
        note += " Not restored: " + ", ".join(f"{s['name']} ({s['why']})" for s in restored.skipped) + "."
    return note + "]"


def follow_up_history(chain: list[tuple[str, str]], restored: RestoreReply | None) -> list[dict[str, str]]:
    """The earlier questions and answers as turns before the new question, the last question
    noting the variables.

    Each earlier answer is the block that gave it, in the form every reply must have: a small
    model copies the form of the turns before it, and answered a prose "My answer was: ..."
    turn with prose of its own until the run stalled.
    """
    history: list[dict[str, str]] = []
    for question, answer in chain:
        history.append({"role": "user", "content": f"An earlier question about the same input (it is still in `context`): {question}"})
        history.append({"role": "assistant", "content": f"```repl\nFINAL({answer!r})\n```"})
    history[-2]["content"] += "\n\n" + variables_note(restored)
    return history


def resume_history(earlier: Earlier, messages: list[dict[str, str]], restored: RestoreReply | None, budget: str) -> list[dict[str, str]]:
    """The conversation after its system prompt, ending with a user turn that says the run resumes.

    When the run stopped inside a reply's code, that turn holds the outputs of the blocks that
    finished and says which did not.
    """
    history = [dict(m) for m in messages[1:]]
    note = (
        f"[The run was stopped ({earlier.why}) and now goes on, with a fresh budget: {budget}.]\n"
        f"{variables_note(restored)}\n"
        "Continue: write the next ```repl block, or call FINAL(...) in code if you have the answer."
    )
    if history[-1]["role"] == "assistant":
        outputs = _finished_cells(earlier.trajectory, len(code_blocks(history[-1]["content"])))
        history.append({"role": "user", "content": f"{outputs}\n\n{note}" if outputs else note})
    else:
        history[-1]["content"] += "\n\n" + note
    return history


def _finished_cells(trajectory: Trajectory, blocks: int) -> str:
    """The outputs of the cells of the last reply that finished, and a line for the one that did not."""
    records = trajectory.records
    last_reply = max((i for i, r in enumerate(records) if r["type"] == "root_response" and not r.get("depth")), default=-1)
    cells = [r for r in records[last_reply + 1 :] if r["type"] == "cell" and not r.get("depth")]
    shown = [f"[block {i} of {blocks}]\n{c.get('output') or '(no output)'}" if blocks > 1 else str(c.get("output") or "(no output)") for i, c in enumerate(cells, 1)]
    if len(cells) < blocks:
        which = f"block {len(cells) + 1} of {blocks}" if blocks > 1 else "the code"
        shown.append(f"[{which} did not finish: the run stopped while it ran]")
    return "\n\n".join(shown)
