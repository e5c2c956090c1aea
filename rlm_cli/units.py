"""Sizes and token estimates, written once: how rlm reads `5M` and how it shows a byte count.

One grammar for every size the user types (`--max-file-size`, `RLM_WORKER_MEMORY`, ...):
`k`, `M`, `G`, `T` are decimal (1000), `Ki`, `Mi`, `Gi`, `Ti` binary (1024), as `ls -h --si` and
`dd` read them; a trailing `B` is allowed. Sizes are shown in the same decimal units, so `5M` is
shown as `5.0 MB`. Standard library only: the worker imports this module too.
"""

from __future__ import annotations

import re

DEFAULT_MAX_FILE_SIZE = "5M"  # --max-file-size: for files found while walking a directory
CHARS_PER_TOKEN = 4  # a rough, deliberately generous estimate where no tokenizer is at hand

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?))?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`5000000`, `500k`, `5M`, `1.5GB`, `4GiB` -> bytes; ValueError with a hint otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 5M, 500k, 2GiB or a number of bytes)")
    number, unit, binary = float(match.group(1)), (match.group(2) or "").lower(), match.group(3)
    base = 1024 if binary else 1000
    return int(number * base ** ("_kmgt".index(unit) if unit else 0))


def format_size(count: int) -> str:
    """Decimal units, as sizes are read: 12_300_000 -> '12.3 MB'."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def estimate_tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN
