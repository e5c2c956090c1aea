"""Control characters made visible, for untrusted text bound for a terminal or a prompt.

Model prose, cell output, code and file names can carry escape sequences that clear the screen,
move the cursor, set the window title or write the clipboard (OSC 52), or bidi controls that
reorder what a reader sees. `visible` shows each such character as a Python-style escape, so
`ESC [2J` arrives as the six characters `\\x1b[2J` and does nothing.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidi embeddings/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters escaped; `one_line` escapes newlines and tabs too (names)."""
    return (_CONTROL_OR_NEWLINE if one_line else _CONTROL).sub(_escape, text)
