"""What the root model is told: the system prompt, each turn's message, and per-family guidance.

The system prompt states the REPL names, the rules and the context's metadata, never its text.
A `PromptProfile` bundles what differs between kinds of model (the prompt's wording, worked
examples, how much cell output to show); `profile_for(model)` picks one by model name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SYSTEM = """\
You answer a question about an input that is far too large to read at once. The input is loaded \
in a Python REPL (IPython) as the variable `context`; you see it only through code you run.

Work in steps. In each reply, write Python code in ```repl blocks. They run in order in the same \
REPL and you are shown what they print (long output is cut to its head and tail, so print what \
matters, not everything). Variables persist between steps.

In the REPL:
- `context`: a str holding the whole input. With several files, each file's text is preceded by \
a line `=== FILE: <path> ===`.
- `context.files`: dict of path -> text, in load order.
- `context.grep(pattern, path=None, max_hits=1000)`: regex search; hits have .path, .line, .text.
- `context.chunks(max_chars=100_000)`: str pieces covering the text in order, each breaking at a \
line, with .path, .start_line, .end_line.
- `llm_query(prompt, context=None)` -> str: ask a sub-model. It sees only the text you pass, \
not `context`. It reads up to about {sub_chars} characters per call.
- `llm_query_batched(prompts)` -> list[str]: many sub-calls at once, run concurrently; a failed \
one leaves a string starting with "ERROR:" in its slot. Far faster than llm_query in a loop.
- `rlm_query(prompt, context=None)` / `rlm_query_batched(prompts, contexts)`: like llm_query, \
but the sub-model gets its own REPL over `context` (a sub-RLM) while depth allows.
- `SHOW_VARS()`: the variables you have defined, with types and sizes.
- `FINAL(answer)`: end the run with str(answer). `FINAL_VAR("name")`: end it with the value of \
the variable `name`, of any size.

Rules:
- Look first: peek at the shape of the data (e.g. print(context[:1500]), counts, a grep) before \
processing all of it.
- Use code (regex, slicing, counting) for exact lookups; use sub-calls for meaning (reading, \
summarising, classifying, extracting from chunks), batched with llm_query_batched.
- Never print the whole context or large parts of it.
- Never assign to `context` or to the names above; use your own variable names.
- The run ends only when executed code calls FINAL(...) or FINAL_VAR(...); writing FINAL in \
prose does nothing. Call it once you have seen the evidence, with the complete answer to the \
question, not a plan.
{guidance}
The context:
{description}
"""

FIRST_TURN = """\
Question: {question}

[{budget}] Start by looking at the context with code; do not answer yet."""

OUTPUT_TURN = """\
{outputs}

[{budget}] Continue: write the next ```repl block, or call FINAL(...) in code if you have the answer."""

NO_CODE_TURN = """\
Your reply had no ```repl code block, so nothing ran and the run goes on. Write Python in a \
```repl block. To finish, call FINAL(answer) or FINAL_VAR("name") inside the code.

[{budget}]"""

LAST_TURN = """\
You have used all your iterations. Reply now with one ```repl block that calls FINAL(...) with \
your best answer from what you have found so far (say what is uncertain)."""

# Appended to the system prompt for model families known to need it.
FAMILY_GUIDANCE: tuple[tuple[str, str], ...] = (
    (
        r"qwen",
        "- IMPORTANT: be very careful with llm_query: every call costs time and money. Never make one "
        "sub-call per line or per small item. Filter with code first, then batch: put many items "
        "(tens of thousands of characters) into each prompt and send the prompts together with "
        "llm_query_batched.",
    ),
    (
        r"(^|/)(o\d|gpt-5|deepseek-r1|qwq)|thinking|reasoner",
        "- Keep your thinking short: write code early and let the REPL do the work.",
    ),
)


@dataclass(frozen=True)
class PromptProfile:
    """What differs between kinds of root model."""

    name: str
    system: str
    max_output_chars: int  # cell output shown to the model per cell


FRONTIER = PromptProfile(name="frontier", system=SYSTEM, max_output_chars=10_000)


def guidance_for(model: str) -> str:
    lines = [text for pattern, text in FAMILY_GUIDANCE if re.search(pattern, model, re.IGNORECASE)]
    return "".join(line + "\n" for line in lines)


def describe_context(describe: dict[str, Any]) -> str:
    """The context's metadata in a few lines; `describe` never holds the input's text."""
    chars = int(describe.get("chars", 0))
    lines = [
        f"- type: {describe.get('type', 'str')}",
        f"- size: {chars:,} characters (~{chars // 4:,} tokens), {int(describe.get('lines', 0)):,} lines",
    ]
    files = int(describe.get("files", 1))
    paths = list(describe.get("paths", []))
    if files > 1:
        shown = ", ".join(paths[:20]) + (f", ... ({files - len(paths[:20])} more)" if files > 20 else "")
        lines.append(f"- files: {files:,}: {shown}")
        extensions = describe.get("extensions") or {}
        if extensions:
            top = sorted(extensions.items(), key=lambda kv: -kv[1])[:10]
            lines.append("- by extension: " + ", ".join(f"{ext or '(none)'} {n}" for ext, n in top))
    elif paths:
        lines.append(f"- one file: {paths[0]}")
    return "\n".join(lines)


def system_prompt(profile: PromptProfile, model: str, describe: dict[str, Any], sub_chars: int) -> str:
    return profile.system.format(
        guidance=guidance_for(model),
        description=describe_context(describe),
        sub_chars=f"{sub_chars:,}",
    )
