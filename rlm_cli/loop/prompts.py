"""What the root model is told: the system prompt, each turn's message, and per-family guidance.

The system prompt states the REPL names, the rules and the context's metadata, never its text.
A `PromptProfile` bundles what differs between kinds of model (the prompt's wording, worked
examples, how much cell output to show); `profile_for(model)` picks one by model name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from rlm_cli.errors import UsageError
from rlm_cli.local.model_spec import is_local_model
from rlm_cli.safetext import visible
from rlm_cli.sources.summary import ContextSummary
from rlm_cli.units import estimate_tokens

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
{code}
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

[{budget}] Start by looking at the context with code; do not answer yet.{code_hint}"""

OUTPUT_TURN = """\
{outputs}

[{budget}] Continue: write the next ```repl block, or call FINAL(...) in code if you have the answer."""

# The cell the loop runs for a small model before its first turn: the search it would write
# first anyway, with the lines around each passage, so its first turn can already answer.
OPENING_CODE = """\
for hit in context.search({question}, k={k}):
    print(context.around(hit, 1, 2))
    print("--")"""
# A question asking for every value: more hits, each its one line, so all of them fit on screen
# (with the lines around each, five hits filled the output cap and the model copied one).
OPENING_EVERY_CODE = """\
for hit in context.search({question}, k={k}):
    print(hit.line, hit.text)"""
OPENING_EVERY_PASSAGES = 12
# Over code each passage also names the definition it lies in: a small model that found the
# docstring a question describes otherwise answers with the docstring, not the function's name.
OPENING_CODE_PASSAGES = """\
for hit in context.search({question}, k={k}):
    print(context.around(hit, 1, 2))
    inside = [s for s in context.symbols(path=hit.path) if s.path == hit.path and s.start_line <= hit.line <= s.end_line]
    if inside:
        s = min(inside, key=lambda s: s.end_line - s.start_line)
        print(f"(in {{s.kind}} {{s.qualname}}, {{s.path}})")
    print("--")"""
# With code, the names the question mentions come first: where each is defined and what calls it,
# from the code graph. A small model greps a name and reads the hits as its callers.
OPENING_SYMBOLS = """\
for name in {names}:
    for s in context.symbols(name)[:3]:
        print(f"{{s.kind}} {{s.qualname}} is defined in {{s.path}} at line {{s.line}}")
    callers = sorted({{c.qualname for c in context.callers(name.split(".")[-1])}})
    if callers:
        print(f"{{name}} is called by: {{', '.join(callers[:40])}}")
print("--")
"""
OPENING_PASSAGES = 6
# An identifier a question names: in backticks, or written as code (snake_case, camelCase, a call).
_NAMED = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`|\b([A-Za-z_]\w*_\w+|[a-z]+[A-Z]\w*|[A-Z]\w*\.[a-z_]\w*|[A-Za-z_]\w*(?=\())")
OPENING_OUTPUT_CHARS = 4_000

SMALL_OPENED_FIRST_TURN = """\
Question: {question}

The lines of the text that best match the question's words (found with context.search; the \
number before each line is its line number):
{opening}
{reading}
[{budget}] {instruction}"""

# What the first turn asks. A question asking for every value gets all of them in one string:
# shown one value, a small model wrote a FINAL per value and ran on inventing more.
ANSWER_FROM_LINES = """\
Read these lines. If they answer the question, reply with FINAL and {example}, write one ```repl \
block that looks further: context.search with other words, or llm_find(question, context.chunks()) \
to ask the helper about every piece.{code_hint}"""
ONE_ANSWER = """\
the answer copied from them, like this:
```repl
FINAL("the answer")
```
If they do not"""
EVERY_ANSWER = """\
every answer copied from them, in one string, like this:
```repl
FINAL("first answer, second answer, third answer")
```
If they do not hold them all"""
# With the helper's reading, the FINAL taking its first answer comes last: the 1.5B root runs the
# last code a turn names, and shown the reading, then other moves, it searched again or scanned.
TAKE_READING = """\
reply with FINAL and the answer copied from them; if the helper's answer above is right, that is:
```repl
FINAL({answer})
```"""
ANSWER_FROM_READING = (
    "Read these lines. If they do not answer the question, write one ```repl block that looks further"
    " with context.search and other words. If they do, " + TAKE_READING
)
# Over code, the definition's FINAL alone: asked for the function that parses sizes in this
# package, the 1.5B root, offered a search as well, scanned all 435 chunks with llm_find instead
# (the system prompt's example); without the other move named, it took FINAL.
ANSWER_FROM_DEFINITION = "If these lines answer the question, " + TAKE_READING
ASKS_FOR_EVERY = re.compile(r"\b(all|every|list)\b", re.IGNORECASE)
# The str literal a line of the reading starts with: Found's repr.
_LITERAL = re.compile(r"""^('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")

# A cell run again after the reading: the answer-now turn, with the reading and its FINAL. Shown
# the reading and other moves, the 1.5B root took them (a scan of every chunk, 130 s here);
# told to answer now, it answers.
SMALL_READ_AGAIN_TURN = """\
{outputs}

You keep running code you already ran, so the REPL has shown you all it will. The helper's \
answer, from the passages that best match the question, was:
{read}
Question: {question_text}
Reply now with one ```repl block that calls FINAL(...) with your best answer from the outputs \
above; with the helper's answer, that is:
```repl
FINAL({answer})
```"""


def reading_answer(read: str) -> str | None:
    """The first answer of the helper's reading (what READ_CODE printed), as a str."""
    literal = _LITERAL.match(read)
    return ast.literal_eval(literal.group(1)) if literal else None


# Questions answered by judging every item, not by finding one passage: counts and frequencies.
# A small model greps the category's name for these; the turn hands it the one block that works.
AGGREGATE = re.compile(
    r"\b(how many|how often|(the|total) number of|count the|most (common|frequent|often)|least (common|frequent|often)"
    r"|proportion|percentage)\b",
    re.IGNORECASE,
)
_BY_LABEL = re.compile(r"\b(most|least)\b", re.IGNORECASE)

SMALL_AGGREGATE_FIRST_TURN = """\
Question: {question}

[{budget}] To answer this, the helper must judge every line on its own. Run this block as it is:
```repl
from collections import Counter
lines = [line for line in context.splitlines() if line.strip()]
instruction = {instruction}
answers = llm_map(instruction, lines)
{tally}
```
Then call FINAL with the result it prints."""

JUDGE_COUNT = (
    "A question about a whole text: {question}\nYou see one line of the text. Does this line count toward"
    " the answer? Answer yes or no."
)
TALLY_COUNT = 'count = sum(a.strip().lower().startswith("yes") for a in answers)\nprint(count)'
JUDGE_LABEL = (
    "A question about a whole text: {question}\nYou see one line of the text. Which category does this"
    " line belong to? Answer with the category only."
)
TALLY_LABEL = "print(Counter(a.strip().lower() for a in answers).most_common())"


def takes_aggregate_turn(profile: PromptProfile, question: str, *, code: bool) -> bool:
    """A count or frequency question, to a profile with a turn for those; not over code, where
    the code graph counts definitions and calls, and judging every line of source answers
    nothing (asked for the function that parses sizes in this package, the 1.5B root got that block)."""
    return profile.aggregate_turn is not None and not code and bool(AGGREGATE.search(question))


SMALL_CODE_HINT = (
    " The text is source code: for a question about functions, classes or calls, use"
    " context.callers(name), context.symbols(name) or context.source(qualname), not grep."
)

SMALL_OUTPUT_TURN = """\
Your code printed:
{outputs}

Question: {question}
[{budget}] Write the next ```repl block. Do not repeat code you already ran. If the output \
above shows the answer, call FINAL(answer) now. If it found nothing, use other words, or llm_find \
over context.chunks(). If it printed nothing, print what you computed."""

# After a cell that found nothing a small model runs it again, or skips the scan it is handed
# and reads variables the scan would have made: so the loop runs the scan itself and shows what
# it found. {question} is a Python string literal.
SCAN_CODE = """\
found = llm_find({question}, context.chunks(max_chars={chunk_chars}))
for answer in found[:{k}]:
    print(repr(answer))"""
SCAN_ANSWERS = 5

# The helper reads the passages that best match the question (one sub-call), and its answer is
# shown with the opening's lines: the 1.5B root passes over an answer on screen and searches
# again, while the 1.5B helper, asked about a few passages, copies it. Only answers on a line
# with half the question's words count, so a question in other words still gets the scan.
READ_CODE = """\
passages = context.around(context.search({question}, k={k}), 3, 2, numbered=False)
found = [answer for answer in llm_find({question}, [passages]) if answer.shares >= {shares}]
for answer in found[:{answers}]:
    print(repr(answer))"""
READ_SHARES = 0.5

OPENING_READING = """
The helper read the passages around these lines and answers, with the line that says it:
{read}
"""

# Over code the reading is the code graph's, with no sub-call: the definition around the best
# hit, for a question asking for a function, method or class by what it does. The ranked search
# put the described docstring first in 80 of 80 generated tasks, and the 1.5B root still searched
# other words instead of copying the "(in function ...)" line printed under it.
OPENING_DEFINITION = """
The helper looked up the definition around the best-matching line:
{read}
"""
ASKS_FOR_DEFINITION = re.compile(r"\b(function|method|class)\b", re.IGNORECASE)
_IN_DEFINITION = re.compile(r"^\(in (\w+) ([\w.]+), (.+)\)$", re.MULTILINE)  # OPENING_CODE_PASSAGES prints it


def definition_reading(question: str, opening: str) -> str | None:
    """The code reading: the name of the definition around the opening's first hit, as a
    reading line (`'name' (kind qualname, path)`), when the question asks for a definition
    without naming one (a named one is the code graph's own lookup, first in the opening)."""
    if not ASKS_FOR_DEFINITION.search(question) or named_identifiers(question):
        return None
    found = _IN_DEFINITION.search(opening.split("\n--\n", 1)[0])
    if found is None:
        return None
    kind, qualname, path = found.groups()
    return f"{qualname.rsplit('.', 1)[-1]!r} ({kind} {qualname}, {path})"

SMALL_NOTHING_TURN = """\
{outputs}

That found nothing. The text may say it in other words, so the helper was asked about every \
piece of the text:
```repl
{code}
```
It printed the answers the pieces hold, likeliest first, each with the line that says it:
{scan}

Question: {question_text}
[{budget}] If one of these answers the question, call FINAL with it. If none does, try \
context.search with other words."""

SMALL_SCAN_EMPTY_TURN = """\
{outputs}

That found nothing, and the helper, asked about every piece of the text, found no answer \
either. Question: {question_text}
[{budget}] Try context.search with other words, or call FINAL with your best answer."""

SMALL_STILL_NOTHING_TURN = """\
{outputs}

That found nothing either. Question: {question_text}
[{budget}] Try other words with context.search, or call FINAL with your best answer."""

UNSUPPORTED_TURN = """\
Your code called FINAL({answer}), but nothing your code printed shows that answer, so it may be a \
guess. Write one ```repl block that prints the lines that support it (for example with \
context.search or context.grep), or finds the right answer, and then call FINAL again.
Question: {question_text}"""

REPEATED = "[you already ran exactly this code before; its result is the same. Do something different.]"

STALLED_TURN = """\
You keep running code you already ran, so the REPL has shown you all it will. Reply now with one \
```repl block that calls FINAL(...) with your best answer from the outputs above."""

NO_CODE_TURN = """\
Your reply had no ```repl code block, so nothing ran and the run goes on. Write Python in a \
```repl block. To finish, call FINAL(answer) or FINAL_VAR("name") inside the code.

[{budget}]"""

SUBCALLS_SPENT_TURN = """\
The sub-call budget (--max-subcalls) is spent: from now on llm_query and its relatives only \
return errors. Reply now with one ```repl block that calls FINAL(...) with your best answer from \
what you have found so far (say what is uncertain)."""

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


# Small models (a few billion parameters) need a tighter prompt: one block per reply, worked
# examples of each move, and blunt rules. Without the examples a 1.5B coder writes FINAL as a
# comment or greps for the words of the question instead of the fact.
SMALL_SYSTEM = """\
You answer a question about a long text. The text is in the Python variable `context` (a str). \
You cannot read it directly: you write Python code, it runs, and you see what it prints.

Reply with exactly one ```repl block of Python code and nothing else.

You can use:
- context: the text (a str). context.grep(pattern) returns the matching lines; each has .line \
(its number) and .text.
- context.search(words): the lines that best match these words, best first, even where no line \
has them all; each has .line and .text. context.around(hit): the numbered lines around a hit.
- context.chunks(max_chars={chunk_chars}): the text cut into pieces.
- llm_query(prompt): ask a helper model about a piece of text of at most {sub_chars} characters.
- llm_map(instruction, items): ask the helper the same thing about each item on its own (lines \
or pieces), in batches; returns one answer per item, in order. The instruction is about one item, \
e.g. "Is this line an error? Answer yes or no."
- llm_find(question, pieces): ask the helper the question about every piece; returns the answers \
a piece really holds, each with .line and .text (the line that says it), the likeliest first.
- FINAL(answer): give your final answer. This ends the work.
{code}
Rules:
- Never assign to `context`. Use other variable names.
- Never print the whole context. Print a few lines at most.
- Search first: context.search with the important words of the question, or context.grep with \
an exact name or id from it.
- When the printed lines hold the answer, call FINAL with it at once.
- If a search found nothing useful, do not run it again: the text may say it in other words. \
Ask the helper about every piece with llm_find over context.chunks().
- To count or sort lines by their meaning, use llm_map over the lines and count the answers in \
code. Never guess a number.
- Call FINAL(answer) as real code when you have the answer, never in a comment.
{guidance}
Example: find the lines about a topic.
```repl
for h in context.search("refund policy for damaged items"):
    print(h.line, h.text)
```

Example: the question was "When does the store open on Sundays?" and the output showed the line \
`412: On Sundays the store opens at 9 am.`, so the answer is on screen: finish with it.
```repl
FINAL("9 am")
```

Example: finish with the value found.
```repl
import re
m = re.search(r"(?i)port number is (\\d+)", context)
print(m.group(0) if m else "not found")
FINAL(m.group(1) if m else "not found")
```

Example: the words differ, so ask the helper about each piece.
```repl
found = llm_find("Who won the match?", context.chunks(max_chars={chunk_chars}))
print(found)
FINAL(found[0] if found else "not found")
```

Example: count lines by their meaning.
```repl
kinds = llm_map("Is this review positive or negative? Answer with one word.", context.splitlines())
count = sum("positive" in k.lower() for k in kinds)
print(count)
FINAL(count)
```

The context:
{description}
"""


CODE_TOOLS = """
The context holds source code, parsed into a code graph you can query:
- `context.symbols(name=None, kind=None, path=None)`: definitions with .name, .qualname, .kind, \
.path, .line, .start_line, .end_line; e.g. `context.symbols(kind="class", path="src/")`.
- `context.source(symbol_or_qualname)`: a definition's text; e.g. `print(context.source("Client.send"))`.
- `context.callers(name)`: the functions that call `name`; e.g. `[s.qualname for s in context.callers("save")]`.
- `context.references(name)`: every use of an identifier; e.g. `context.references("Config")[:20]`.
- `context.imports(path=None)`: import statements with .module and .resolved; e.g. `context.imports("app/main.py")`.
- `context.outline(path=None)`: files and their symbols as a tree; e.g. `print(context.outline("src/")[:3000])`.
- `context.graph`: the networkx MultiDiGraph behind them (files and symbols; defines, contains, \
imports, calls edges), for walks the methods above do not cover.
"""

SMALL_CODE_TOOLS = """- The text is source code. context.symbols(name): the definitions called `name`; each has \
.qualname, .path, .line. context.source(qualname): the text of one definition, e.g. \
context.source("Client.send"). context.callers(name): the functions that call `name`. \
Use these for questions about code, for example:
```repl
for s in context.callers("save"):
    print(s.qualname, s.path, s.line)
```
"""


@dataclass(frozen=True)
class PromptProfile:
    """What differs between kinds of root model."""

    name: str
    system: str
    max_output_chars: int  # cell output shown to the model per cell
    full_turns: int | None = None  # older cell outputs are shortened beyond this many turns
    max_chunk_chars: int = 100_000  # the chunk size the prompt suggests, at most
    first_turn: str = FIRST_TURN
    output_turn: str = OUTPUT_TURN
    code_tools: str = CODE_TOOLS
    code_hint: str = ""  # added to the first turn when the context holds code
    # Steering for models that need it (loop/grounding.py): the turn after a cell that found
    # nothing, once the loop has run SCAN_CODE (None: no scan, the usual turn), and whether a
    # FINAL nothing printed supports gets one more look.
    nothing_turn: str | None = None
    grounded: bool = False
    max_repeats: int = 2  # cells re-run verbatim before the model is asked for its answer
    opening: bool = False  # the loop runs OPENING_CODE before the first turn, which shows its output
    aggregate_turn: str | None = None  # the first turn for a count or frequency question


FRONTIER = PromptProfile(name="frontier", system=SYSTEM, max_output_chars=10_000)
# On a CPU a small model reads ~150 tokens/s: a 2,000-character chunk is a sub-call of about 4 s,
# and short enough for a 1.5B model to notice a fact said in other words: asked about the chunk
# holding the fact, it missed 2 of 6 facts in 4,000 characters and none in 2,000.
SMALL = PromptProfile(
    name="small",
    system=SMALL_SYSTEM,
    max_output_chars=2_000,
    full_turns=2,
    max_chunk_chars=2_000,
    first_turn=SMALL_OPENED_FIRST_TURN,
    output_turn=SMALL_OUTPUT_TURN,
    code_tools=SMALL_CODE_TOOLS,
    code_hint=SMALL_CODE_HINT,
    nothing_turn=SMALL_NOTHING_TURN,
    grounded=True,
    max_repeats=1,
    opening=True,
    aggregate_turn=SMALL_AGGREGATE_FIRST_TURN,
)

# Parameter counts in model names: "qwen2.5-coder-1.5b", "llama-3.2-3b-instruct", "phi3:3.8b".
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)
SMALL_MAX_BILLIONS = 8.0


PROFILES = {p.name: p for p in (FRONTIER, SMALL)}


def profile_for(model: str, override: str | None = None) -> PromptProfile:
    """The small-model prompt for the local model and any model named with <= 8B parameters,
    unless `override` names a profile."""
    if override:
        try:
            return PROFILES[override]
        except KeyError:
            raise UsageError(f"unknown prompt profile {override!r}; known: {', '.join(PROFILES)}") from None
    if is_local_model(model):
        return SMALL
    sizes = [float(n) for n in _SIZE.findall(model.rsplit("/", 1)[-1])]
    return SMALL if sizes and max(sizes) <= SMALL_MAX_BILLIONS else FRONTIER


def guidance_for(model: str) -> str:
    lines = [text for pattern, text in FAMILY_GUIDANCE if re.search(pattern, model, re.IGNORECASE)]
    return "".join(line + "\n" for line in lines)


def describe_context(summary: ContextSummary) -> str:
    """The context's metadata in a few lines; file names with control characters escaped."""
    lines = [
        f"- type: {summary.type}",
        f"- size: {summary.chars:,} characters (~{estimate_tokens(summary.chars):,} tokens), {summary.lines:,} lines",
    ]
    paths = [visible(path, one_line=True) for path in summary.paths]
    if summary.files > 1:
        shown = ", ".join(paths) + (f", ... ({summary.files - len(paths)} more)" if summary.files > len(paths) else "")
        lines.append(f"- files: {summary.files:,}: {shown}")
        top = sorted(summary.extensions.items(), key=lambda kv: -kv[1])[:10]
        if top:
            lines.append("- by extension: " + ", ".join(f"{visible(ext, one_line=True) or '(none)'} {n}" for ext, n in top))
    elif paths:
        lines.append(f"- one file: {paths[0]}")
    repo = summary.repository
    if repo:
        commit = (repo.commit or "")[:12]
        remote = f" from {visible(repo.remote_url, one_line=True)}" if repo.remote_url else ""
        name = visible(repo.name, one_line=True)
        lines.append(f"- git repository {name}{remote}" + (f" at commit {commit}" if commit else ""))
    code = summary.code
    if code:
        languages = ", ".join(f"{lang} {n}" for lang, n in code.languages.items())
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in code.symbols_by_kind.items())
        lines.append(f"- code: {code.parsed_files:,} files parsed ({languages}); symbols: {kinds or 'none'}")
    return "\n".join(lines)


def first_turn(
    profile: PromptProfile, question: str, budget: str, *, code: bool, opening: str = "", reading: str = ""
) -> str:
    """The first user turn: the question, and (profiles with an opening) what the opening cell
    printed and the helper's reading of it, or for a count or frequency question the block that
    judges every line."""
    if profile.aggregate_turn is not None and takes_aggregate_turn(profile, question, code=code):
        by_label = bool(_BY_LABEL.search(question))
        return profile.aggregate_turn.format(
            question=question,
            budget=budget,
            instruction=repr((JUDGE_LABEL if by_label else JUDGE_COUNT).format(question=question)),
            tally=TALLY_LABEL if by_label else TALLY_COUNT,
        )
    hint = profile.code_hint if code else ""
    answer = reading_answer(reading)
    if answer is not None:
        instruction = (ANSWER_FROM_DEFINITION if code else ANSWER_FROM_READING).format(answer=repr(answer))
        reading = (OPENING_DEFINITION if code else OPENING_READING).format(read=reading)
    else:
        example = EVERY_ANSWER if ASKS_FOR_EVERY.search(question) else ONE_ANSWER
        instruction = ANSWER_FROM_LINES.format(example=example, code_hint=hint)
    return profile.first_turn.format(
        question=question, budget=budget, code_hint=hint, opening=opening, reading=reading, instruction=instruction
    )


def opens_with_search(profile: PromptProfile, question: str, *, code: bool) -> bool:
    """Whether the loop runs the opening search first: not for questions the aggregate turn takes."""
    return profile.opening and not takes_aggregate_turn(profile, question, code=code)


def named_identifiers(question: str) -> list[str]:
    """The identifiers a question names as code, in order, each once."""
    return list(dict.fromkeys(a or b for a, b in _NAMED.findall(question)))


def opening_code(question: str, *, code: bool = False) -> str:
    """The opening cell: the ranked search, after the definitions and callers of the names the
    question mentions when the context holds code."""
    if code:
        search = OPENING_CODE_PASSAGES.format(question=repr(question), k=OPENING_PASSAGES)
    elif ASKS_FOR_EVERY.search(question):
        search = OPENING_EVERY_CODE.format(question=repr(question), k=OPENING_EVERY_PASSAGES)
    else:
        search = OPENING_CODE.format(question=repr(question), k=OPENING_PASSAGES)
    names = named_identifiers(question) if code else []
    return OPENING_SYMBOLS.format(names=repr(names)) + search if names else search


def scan_code(question: str, chunk_chars: int) -> str:
    return SCAN_CODE.format(question=repr(question), chunk_chars=chunk_chars, k=SCAN_ANSWERS)


def read_code(question: str) -> str:
    return READ_CODE.format(question=repr(question), k=OPENING_PASSAGES, shares=READ_SHARES, answers=SCAN_ANSWERS)


def chunk_chars(profile: PromptProfile, sub_chars: int) -> int:
    """The chunk size the prompts suggest: three quarters of a sub-call, in thousands, at most the profile's."""
    return min(profile.max_chunk_chars, max(1000, sub_chars * 3 // 4 // 1000 * 1000))


def system_prompt(profile: PromptProfile, model: str, summary: ContextSummary, sub_chars: int) -> str:
    return profile.system.format(
        code=profile.code_tools if summary.code else "",
        guidance=guidance_for(model),
        description=describe_context(summary),
        sub_chars=f"{sub_chars:,}",
        chunk_chars=chunk_chars(profile, sub_chars),
    )
