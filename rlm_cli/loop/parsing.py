"""Finding the code in a root model's reply.

Only fenced blocks count, and only executed code ends a run: `FINAL(...)` written in prose is
just text. ```repl is the contract; ```python/```py are tolerated because models drift to them; a
bare ``` block counts only when the reply has no tagged block; an unclosed last block (a reply cut
off by its token limit) still runs, so the model sees its own error instead of silence. A reply
with no fence that opens with the tag alone on its first line (`repl`, then code, then ```) is
that block with its opening fence lost, as small models write it; a block whose first line is the
tag again (```repl, then `repl`) has that line dropped, so a block of only the tag is no code.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_CODE_TAGS = {"repl", "python", "py", "python3", "ipython"}
_HEADLESS = re.compile(r"\A\s*(?:repl|python|py)[ \t]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_DOUBLED_TAG = re.compile(r"\A\s*(?:repl|python|py)[ \t]*(?:\n|\Z)")


def code_blocks(reply: str) -> list[str]:
    """The code cells of a reply, in order."""
    tagged: list[str] = []
    bare: list[str] = []
    for match in _FENCE.finditer(reply):
        tag, body = match.group(1).lower(), _DOUBLED_TAG.sub("", match.group(2), count=1)
        if not body.strip():
            continue
        if tag in _CODE_TAGS:
            tagged.append(body.rstrip())
        elif not tag:
            bare.append(body.rstrip())
    if tagged or bare:
        return tagged or bare
    headless = _HEADLESS.match(reply)
    return [headless.group(1).rstrip()] if headless and headless.group(1).strip() else []


def prose(reply: str) -> str:
    """The reply with its fenced blocks removed: what a model said outside code."""
    return _FENCE.sub("", reply).strip()
