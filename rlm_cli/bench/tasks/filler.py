"""Haystack text: varied prose paragraphs or service log lines, from a seeded generator.

The vocabulary is fixed and small, so a planted fact's value (digits, a name from its own list)
never occurs in the filler by chance; generators check that anyway.
"""

from __future__ import annotations

import random
import time

WORDS = (
    "ledger harbor quartz meadow signal lantern copper orbit fabric summit delta granite willow "
    "beacon cipher thistle marble canyon ember falcon glacier hollow ivory juniper kestrel lagoon "
    "mosaic nectar onyx pepper quiver raven saffron tundra umber velvet walnut yarrow zephyr "
    "anchor bramble cobalt dune estuary fern gale heron inlet jasper kiln lichen mesa nimbus "
    "opal prairie quarry reef sable timber vale wharf basalt cedar drift"
).split()

SUBJECTS = ("The committee", "Our group", "The survey office", "Every volunteer", "The new intern",
            "The surveyor", "Most readers", "The archive", "The night crew", "A local baker",
            "The quarterly review", "The research group", "Her cousin", "The old mill")
VERBS = ("reviewed", "postponed", "described", "measured", "painted", "questioned", "repaired",
         "collected", "ignored", "celebrated", "catalogued", "rebuilt", "praised", "mapped")
OBJECTS = ("the {w} report", "a {w} near the {w2}", "every {w} on the list", "the {w} budget",
           "the notes about the {w}", "two {w} samples", "the {w} by the {w2}")
TAILS = ("before the storm arrived", "without much fuss", "after a long debate", "as usual",
         "in the early afternoon", "despite the rain", "for the third time this year",
         "while the {w} was closed", "with some help from the {w} crew", "and nobody complained")

SERVICES = "auth-svc billing gateway scheduler inventory search-api notifier ledger-sync media-proc reports".split()
PATHS = "users orders invoices sessions carts products reports exports webhooks tokens".split()
ERRORS = ("ConnectionResetError", "TimeoutError", "HTTP 503", "deadlock detected", "EOF on socket",
          "TLS handshake failed", "rate limited", "checksum mismatch")


def sentence(rng: random.Random) -> str:
    obj = rng.choice(OBJECTS).format(w=rng.choice(WORDS), w2=rng.choice(WORDS))
    tail = rng.choice(TAILS).format(w=rng.choice(WORDS))
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {obj} {tail}."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))


def log_line(rng: random.Random, ts: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{rng.randint(0, 999):03d}Z"
    level = rng.choices(("INFO", "DEBUG", "WARN", "ERROR"), weights=(60, 25, 10, 5))[0]
    svc = rng.choice(SERVICES)
    kind = rng.randrange(6)
    if kind == 0:
        msg = (f"request {rng.getrandbits(40):010x} {rng.choice(('GET', 'POST', 'PUT', 'DELETE'))} "
               f"/api/v{rng.randint(1, 3)}/{rng.choice(PATHS)} status={rng.choice((200, 201, 204, 404, 500))} "
               f"{rng.randint(2, 2400)}ms")
    elif kind == 1:
        msg = f"cache {rng.choice(('hit', 'miss', 'evict'))} key={rng.choice(PATHS)} ttl={rng.randint(5, 3600)}s"
    elif kind == 2:
        msg = f"pool {rng.choice(('db-main', 'db-replica', 'redis', 'amqp'))} size={rng.randint(4, 64)} waiting={rng.randint(0, 9)}"
    elif kind == 3:
        msg = f"job {rng.choice(WORDS)} retry {rng.randint(1, 5)}/5 after {rng.choice(ERRORS)}"
    elif kind == 4:
        msg = f"gc pause {rng.uniform(0.1, 80):.1f}ms heap={rng.randint(200, 4000)}MB"
    else:
        msg = f"health check {rng.choice(('ok', 'ok', 'degraded'))} upstream={rng.choice(SERVICES)} latency={rng.randint(1, 300)}ms"
    return f"{stamp} {level:<5} [{svc}] {msg}"


def haystack(rng: random.Random, chars: int, kind: str) -> list[str]:
    """Lines of filler (prose paragraphs or log lines) adding up to about `chars` characters."""
    lines: list[str] = []
    size = 0
    ts: float = 1_760_000_000 + rng.randint(0, 10**7)
    while size < chars:
        if kind == "log":
            ts += rng.uniform(0.01, 4.0)
            line = log_line(rng, ts)
        else:
            line = paragraph(rng)
        lines.append(line)
        size += len(line) + 1
    return lines


def plant(rng: random.Random, lines: list[str], sentences: list[str], kind: str) -> list[str]:
    """`lines` with each sentence inserted at its own random place (in the middle 90%)."""
    out = list(lines)
    for text in sentences:
        at = int(len(out) * rng.uniform(0.05, 0.95))
        if kind == "log":
            stamp = out[max(at - 1, 0)][:24] if out else "2026-01-01T00:00:00.000Z"
            text = f"{stamp} INFO  [{rng.choice(('ops-notes', 'facilities', 'it-desk'))}] note: {text}"
        out.insert(at, text)
    return out
