"""`rlm runs export --format chat`: recorded runs as chat-format fine-tuning examples.

One JSON object per line, `{"messages": [...]}` as OpenAI fine-tuning and Hugging Face TRL's
SFT trainer read it: the system prompt, then the user turns (the question, then each cell's
output as the model was shown it, with the budget line) and the assistant turns (the root
model's replies with their ```repl code), in the order they were sent. Only the root
conversation (depth 0) is exported; the sub-calls are not part of what the root learns to write.

The conversation comes from the trajectory's `message` records (the system prompt and every user
turn, as sent) and `root_response` texts. A trajectory written before `message` records existed
cannot be rebuilt exactly and is skipped, and counted. Outputs are exported as they were
produced, before the small-model profile shortened older ones for the model's window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rlm_cli.errors import RlmError
from rlm_cli.runs.records import Trajectory, read_run
from rlm_cli.runs.summary import RunSummary

FORMATS = ("chat",)


def conversation(trajectory: Trajectory) -> list[dict[str, str]]:
    """The root conversation as it was sent, in order: `message` records (the system prompt, user
    turns, and the earlier turns a follow-up or a resumed run started from) and the replies."""
    messages: list[dict[str, str]] = []
    for record in trajectory.records:
        if record.get("depth", 0) != 0:
            continue
        if record["type"] == "message" and record.get("role") in ("system", "user", "assistant"):
            messages.append({"role": str(record["role"]), "content": str(record.get("content") or "")})
        elif record["type"] == "root_response":
            messages.append({"role": "assistant", "content": str(record.get("text") or "")})
    return messages


def chat_messages(trajectory: Trajectory) -> list[dict[str, str]] | None:
    """The root conversation as chat messages, ending with the last reply; None without prompts."""
    messages = conversation(trajectory)
    if not messages or messages[0]["role"] != "system":
        return None
    while messages and messages[-1]["role"] != "assistant":  # a turn sent after the last reply taught nothing
        messages.pop()
    return messages if len(messages) >= 3 else None


@dataclass
class ExportReport:
    written: int = 0
    without_prompts: list[str] = field(default_factory=list)  # run ids recorded before `message` records
    unreadable: list[str] = field(default_factory=list)


def export_chat(runs: Iterable[RunSummary], out: IO[str]) -> ExportReport:
    """Write one example per run to `out`; runs that cannot be exported are counted in the report."""
    report = ExportReport()
    for run in runs:
        try:
            trajectory = read_run(Path(run.path))
        except RlmError:
            report.unreadable.append(run.id)
            continue
        messages = chat_messages(trajectory)
        if messages is None:
            report.without_prompts.append(run.id)
            continue
        example: dict[str, Any] = {"messages": messages}
        out.write(json.dumps(example, ensure_ascii=False) + "\n")
        report.written += 1
    return report
