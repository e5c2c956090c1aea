"""Find secrets in one file's text with Yelp's detect-secrets plugins, fast enough for every load.

detect-secrets checks a line at a time with two dozen plugins, several microseconds each: on a
repository of a million lines that is a minute, longer than loading it. So a gate goes first.
Every plugin belongs to a `Family` whose `gate` is a cheap regular expression that any line the
family's plugins could flag must match (a literal prefix such as `AKIA` or `ghp_`, a keyword
followed by an assignment, a long quoted string after `=` or `:`). One Hyperscan database of all
the gates finds the (line, family) pairs in a single pass over the bytes; only those lines meet
that family's plugins. Without Hyperscan the same gates run as Python regexes, line by line
(slower, same answers): `gated_lines_re` is also the reference the Hyperscan path is tested
against, and `scan_text(..., gate=False)` (every line through every plugin) is the reference the
gate is tested against.

What is not detect-secrets' own choice, and why:
- Network verification is off (`_no_verification`): a scan must never send a found key anywhere.
- The public-IP plugin is left out: an address is not a secret, and docs are full of them.
- High-entropy strings count only as the value of an assignment (`x = "..."`, `"k": "..."`):
  elsewhere they are mostly hashes, test vectors and base64 data.
- detect-secrets drops a whole line that looks like `x = call(...)`; here that filter, and the
  lock-file/swagger/asset filters, apply only to the guessing plugins (keyword, entropy), so a
  vendor-format token is redacted wherever it stands.
- A private key is redacted as the whole block, BEGIN to END, not just its first line.
- The inline allowlist comment (`pragma: allowlist secret`) is ignored: it allows a commit,
  not sending the value to a model.

A result is a list of `Span`s (line, columns, kind); values are never kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
    HighEntropyStringsPlugin,
)
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.settings import get_settings
from detect_secrets.util.filetype import determine_file_type

from rlm_cli.paths import cache_dir

__all__ = ["FAMILIES", "Span", "gated_lines", "gated_lines_re", "scan_text"]

PRIVATE_KEY = "private-key"

# The kind in `[REDACTED:kind]`: short, lower case, says what was there.
_KINDS: dict[type[BasePlugin], str] = {
    ArtifactoryDetector: "artifactory-token",
    AWSKeyDetector: "aws-key",
    AzureStorageKeyDetector: "azure-key",
    BasicAuthDetector: "password",
    CloudantDetector: "cloudant-key",
    DiscordBotTokenDetector: "discord-token",
    GitHubTokenDetector: "github-token",
    GitLabTokenDetector: "gitlab-token",
    Base64HighEntropyString: "high-entropy",
    HexHighEntropyString: "high-entropy",
    IbmCloudIamDetector: "ibm-key",
    IbmCosHmacDetector: "ibm-key",
    JwtTokenDetector: "jwt",
    KeywordDetector: "secret",  # "password" when the keyword says so (`_keyword_kind`)
    MailchimpDetector: "mailchimp-key",
    NpmDetector: "npm-token",
    OpenAIDetector: "openai-key",
    PrivateKeyDetector: PRIVATE_KEY,
    PypiTokenDetector: "pypi-token",
    SendGridDetector: "sendgrid-key",
    SlackDetector: "slack-token",
    SoftlayerDetector: "softlayer-key",
    SquareOAuthDetector: "square-secret",
    StripeDetector: "stripe-key",
    TelegramBotTokenDetector: "telegram-token",
    TwilioKeyDetector: "twilio-key",
}

# Gates run as Python regexes on text and as Hyperscan on UTF-8 bytes. Where detect-secrets says
# `\w` or `\s` (Unicode in Python), a gate also takes any non-ASCII character (any byte >= 0x80),
# so it is never narrower in either engine. Horizontal space only: a gate never spans lines.
_W = r"(?:\w|[^\x00-\x7f])"
_SP = r"(?:[^\S\n]|[^\x00-\x7f])"
# The stems of detect-secrets' keyword list (`api_key`, `db_pass`, `passwd`, `contraseña`...), and
# of the vendor assignment forms (`cloudant_password = ...`, `ibm_api_key: ...`, `sl_token`).
_KW = r"(?i:key|pass|pwd|secret|contrase)"
_VENDOR_KW = r"(?i:key|pw|pass|token)"


@dataclass(frozen=True)
class Family:
    """Plugins that share a gate: a line can hold one of their secrets only if the gate matches it."""

    name: str
    gate: str  # a regex both Hyperscan and `re` read the same way; never spans a line break
    plugins: tuple[BasePlugin, ...]
    guessing: bool = False  # keyword and entropy: heuristics, filtered harder (module docstring)
    # only in files for which the keyword plugin uses one of these regex sets (None: every file)
    keyword_sets: tuple[object, ...] | None = None


def _families() -> tuple[Family, ...]:
    quoted = "|".join((  # the forms detect-secrets accepts in any file (quotes required)
        # password = "x", api_key: 'x', token => "x", secret != "x"
        _KW + _W + r"*[\]'\"]{0,2}" + _SP + r"*(?::|[!=]{1,3}>?)" + _SP + r"*@?['\"`]",
        # char password[25] = "x"
        _KW + _W + r"*\[[0-9]*\]" + _SP + r"*[!=]{1,2}" + _SP + r"*@?\"",
        # private_key "x";
        _KW + r"[^\n]*['\"`];",
        # "x" == password
        r"['\"`][^\n]*[!=]{2}" + _SP + r"*" + _W + "*" + _KW,
    ))
    # YAML, INI, .env, Go...: detect-secrets also takes an unquoted value there.
    unquoted = _KW + _W + r"*[\]'\"]{0,2}" + _SP + r"*(?::|[!=]{1,3})"
    # C++: secret("x") / secret.assign("x")
    cpp = _KW + _W + r"*(?:.assign)?\(\""
    # cloudant_password = <64 hex>, ibm_api_key: <44 chars>, softlayer_key  <64>: spaces count as `=`
    vendor = _VENDOR_KW + r"[\]'\"]{0,2} *(?:=|:|:=|=>| +|::) *['\"]?[A-Za-z0-9_-]{24}"
    return (
        Family("aws", r"A(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)[0-9A-Z]{16}|(?i:aws)[^\n]*['\"][0-9a-zA-Z/+]{40}['\"]",
               (AWSKeyDetector(),)),
        Family("artifactory", r"A(?:KC|P[0-9A-F])[a-zA-Z0-9]{8}", (ArtifactoryDetector(),)),
        Family("azure", r"AccountKey=", (AzureStorageKeyDetector(),)),
        Family("basic-auth", r"://[^\n]*@", (BasicAuthDetector(),)),
        Family("cloudant", r"(?i:cloudant\.com)", (CloudantDetector(),)),
        Family("softlayer", r"(?i:api\.softlayer\.com)", (SoftlayerDetector(),)),
        Family("jwt", r"eyJ[A-Za-z0-9_=-]+\.", (JwtTokenDetector(),)),
        Family("github", r"gh[pousr]_[A-Za-z0-9_]{36}", (GitHubTokenDetector(),)),
        Family("gitlab", r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|GR1348941", (GitLabTokenDetector(),)),
        Family("private-key", r"PRIVATE KEY|PuTTY-User-Key-File-2", (PrivateKeyDetector(),)),
        Family("pypi", r"pypi-Ag", (PypiTokenDetector(),)),
        Family("sendgrid", r"SG\.[a-zA-Z0-9_-]{22}\.", (SendGridDetector(),)),
        Family("slack", r"xox[abposr]-|hooks\.slack\.com", (SlackDetector(),)),
        Family("square", r"sq0csp-", (SquareOAuthDetector(),)),
        Family("stripe", r"[rs]k_live_", (StripeDetector(),)),
        Family("openai", r"T3BlbkFJ", (OpenAIDetector(),)),
        Family("npm", r"_authToken", (NpmDetector(),)),
        Family("twilio", r"[AS][CK][a-z0-9]{32}", (TwilioKeyDetector(),)),
        Family("mailchimp", r"[0-9a-z]{32}-us[0-9]", (MailchimpDetector(),)),
        Family("telegram", r"[0-9]{8}:[0-9A-Za-z_-]{35}", (TelegramBotTokenDetector(),)),
        Family("discord", r"[MNO][a-zA-Z0-9_-]{23}[a-zA-Z0-9_.-]{0,3}[a-zA-Z0-9_-]{6}\.", (DiscordBotTokenDetector(),)),
        Family("vendor-keyword", vendor,
               (CloudantDetector(), IbmCloudIamDetector(), IbmCosHmacDetector(), SoftlayerDetector())),
        Family("keyword", quoted, (KeywordDetector(),), guessing=True),
        Family("keyword-unquoted", unquoted, (KeywordDetector(),), guessing=True,
               keyword_sets=(keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, keyword.GOLANG_DENYLIST_REGEX_TO_GROUP)),
        Family("keyword-c++", cpp, (KeywordDetector(),), guessing=True,
               keyword_sets=(keyword.C_PLUS_PLUS_REGEX_TO_GROUP,)),
        Family(
            "entropy",
            # the whole quoted string in the plugin's charset, long enough to pass its entropy limit:
            # 23 characters for base64's 4.5 bits (log2(22) < 4.5), 9 hex digits for hex's 3
            r"(?::|=|=>)" + _SP + r"*@?[bBrRuUfF]{0,2}['\"](?:[A-Za-z0-9+/=_\\-]{23,}|[0-9a-fA-F]{9,})['\"]",
            (Base64HighEntropyString(), HexHighEntropyString()),
            guessing=True,
        ),
    )


def _no_verification() -> None:
    """detect-secrets verifies a found key online only when this filter is configured: never here."""
    get_settings().disable_filters("detect_secrets.filters.common.is_ignored_due_to_verification_policies")


_no_verification()
FAMILIES = _families()


@dataclass(frozen=True, order=True)
class Span:
    """Columns `start`..`end` of line `line` (0-based, lines split at '\\n') hold a secret.

    `marker` is False for the later lines of a private-key block: they become empty, and the
    block's first line carries its one `[REDACTED:private-key]`.
    """

    line: int
    start: int
    end: int
    kind: str
    marker: bool = True


# --- the gate -----------------------------------------------------------------------------------


def gated_lines_re(text: str, families: Sequence[Family] = FAMILIES) -> dict[int, set[int]]:
    """line index -> indexes of the families whose gate matches that line (the reference gate)."""
    gates = [re.compile(family.gate) for family in families]
    found: dict[int, set[int]] = {}
    for number, line in enumerate(text.split("\n")):
        hits = {index for index, gate in enumerate(gates) if gate.search(line)}
        if hits:
            found[number] = hits
    return found


@lru_cache(maxsize=1)
def _hyperscan_database() -> object | None:
    """All gates in one database, each reporting once per line at the line's end; None without Hyperscan.

    Compiling takes a few hundred milliseconds, so the compiled database is kept in
    `<cache>/secrets/` (named by a digest of the gates and the Hyperscan version) and loaded after.
    """
    try:
        import hyperscan
    except ImportError:
        return None
    expressions = [f"(?:{family.gate})[^\\n]*$".encode() for family in FAMILIES]
    version = metadata.version("hyperscan").encode()  # loadb refuses another version's database anyway
    digest = hashlib.sha256(b"\0".join([version, *expressions])).hexdigest()[:16]
    stored = cache_dir() / "secrets" / f"gate-{digest}.hsdb"
    with contextlib.suppress(OSError, hyperscan.error):
        loaded = hyperscan.loadb(stored.read_bytes(), hyperscan.HS_MODE_BLOCK)
        loaded.scratch = hyperscan.Scratch(loaded)  # a loaded database comes without one
        return loaded
    database = hyperscan.Database()
    database.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=hyperscan.HS_FLAG_MULTILINE,
    )
    with contextlib.suppress(OSError):  # the cache is an optimisation only
        stored.parent.mkdir(parents=True, exist_ok=True)
        scratch = stored.with_name(f"{stored.name}.{os.getpid()}")
        scratch.write_bytes(hyperscan.dumpb(database))
        os.replace(scratch, stored)
    return database


def gated_lines(text: str) -> dict[int, set[int]]:
    """Like `gated_lines_re`, in one pass of Hyperscan over the bytes when it is installed."""
    database = _hyperscan_database()
    if database is None:
        return gated_lines_re(text)
    data = text.encode("utf-8", "surrogatepass")
    ends: list[tuple[int, int]] = []

    def on_match(family: int, start: int, end: int, flags: int, context: object) -> None:
        ends.append((end, family))

    database.scan(data, match_event_handler=on_match)  # type: ignore[attr-defined]
    found: dict[int, set[int]] = {}
    line, counted = 0, 0
    for end, family in sorted(ends):
        line += data.count(b"\n", counted, end)
        counted = end
        found.setdefault(line, set()).add(family)
    return found


# --- the plugins ----------------------------------------------------------------------------------


# A line longer than this (minified code, one-line JSON) is checked in overlapping pieces:
# detect-secrets' regexes backtrack, and on a 500 kB line they take seconds. Any secret up to
# `_OVERLAP` characters long lies whole in one piece.
LONG_LINE = 500
_OVERLAP = 200


# A scan of fewer characters than this in all, in a process that has not compiled the Hyperscan
# database, runs the Python gates: ~15 ms at most, against ~80 ms to compile the database.
SMALL_SCAN_CHARS = 32_000


def quick_gate(chars: int) -> bool:
    """Whether a scan of `chars` characters in all is done sooner by the Python gates."""
    return chars < SMALL_SCAN_CHARS and _hyperscan_database.cache_info().currsize == 0


def scan_text(path: str, text: str, gate: bool = True, quick: bool = False) -> list[Span]:
    """The secrets in `text` (the file at `path`), as spans; `gate=False` checks every line;
    `quick` gates with `gated_lines_re` (same answers; see `quick_gate`)."""
    lines = text.split("\n")
    profile = _profile(path)
    # (line number, column, text): long lines in pieces; None when every line is a unit of its own
    units = list(_units(lines)) if max(map(len, lines)) > LONG_LINE else None
    if gate:
        gated = text if units is None else "\n".join(unit for _, _, unit in units)
        candidates = gated_lines_re(gated) if quick else gated_lines(gated)
    else:
        every = set(range(len(FAMILIES)))
        candidates = {index: every for index in range(len(lines if units is None else units))}
    spans: set[Span] = set()
    for index in sorted(candidates):
        number, offset, unit = (index, 0, lines[index]) if units is None else units[index]
        piece = unit.rstrip()
        for family_index in sorted(candidates[index]):
            family = FAMILIES[family_index]
            if (family.guessing and profile.skip_guessing) or not profile.wants(family):
                continue
            found = [
                span
                for plugin in family.plugins
                for span in _plugin_spans(plugin, profile.filename, piece, offset, number, lines)
            ]
            # detect-secrets' `x = call(...)` filter, for the guesses only (module docstring)
            if found and not (family.guessing and heuristic.is_indirect_reference(piece)):
                spans.update(found)
    return sorted(spans)


def _units(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    for number, line in enumerate(lines):
        if len(line) <= LONG_LINE:
            yield number, 0, line
            continue
        for start in range(0, len(line), LONG_LINE - _OVERLAP):
            yield number, start, line[start : start + LONG_LINE]
            if start + LONG_LINE >= len(line):
                break


@dataclass(frozen=True)
class _Profile:
    filename: str  # what the keyword plugin is told, to pick its regexes for the file type
    keyword_set: object  # the regexes it picks
    skip_guessing: bool  # lock files, swagger, assets: the keyword/entropy guesses are noise there

    def wants(self, family: Family) -> bool:
        return family.keyword_sets is None or any(self.keyword_set is chosen for chosen in family.keyword_sets)


_CONFIG_NAMES = (".env", ".netrc", ".npmrc", ".pypirc", ".pgpass", ".git-credentials", ".htpasswd")


def _profile(path: str) -> _Profile:
    name = os.path.basename(path)
    lowered = name.lower()
    # `KEY=value` files with no extension detect-secrets knows: read them as config files.
    config = lowered.startswith(_CONFIG_NAMES) or lowered.endswith((".env", ".envrc"))
    filename = "config.cnf" if config else name
    chosen = keyword.REGEX_BY_FILETYPE.get(determine_file_type(filename), keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    skip = heuristic.is_lock_file(name) or heuristic.is_swagger_file(path) or heuristic.is_non_text_file(name)
    return _Profile(filename=filename, keyword_set=chosen, skip_guessing=skip)


def _plugin_spans(
    plugin: BasePlugin, filename: str, piece: str, offset: int, number: int, lines: list[str]
) -> Iterator[Span]:
    """What one plugin finds in `piece` (columns `offset`.. of line `number`), as spans of that line."""
    found = plugin.analyze_line(filename=filename, line=piece, line_number=number)
    for value in sorted({secret.secret_value for secret in found if secret.secret_value}):
        if _filtered(value, piece, plugin):
            continue
        if isinstance(plugin, PrivateKeyDetector):
            yield from _private_key_block(lines, number, offset + piece.find(value))
            continue
        for start, end in _occurrences(lines[number], value, plugin, offset, offset + len(piece)):
            kind = _keyword_kind(lines[number], start) if isinstance(plugin, KeywordDetector) else _KINDS[type(plugin)]
            yield Span(number, start, end, kind)


def _filtered(value: str, line: str, plugin: BasePlugin) -> bool:
    """detect-secrets' default false-positive filters on the value."""
    return (
        heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_likely_id_string(value, line, plugin)
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
    )


# A value that is an assignment's right-hand side: `= "`, `: '`, `=> "`, `= b"` ...
_ASSIGNED = re.compile(r"(?::|=|=>)\s*@?[bBrRuUfF]{0,2}['\"]$")
# The rest of a token a vendor regex matched the head of (the JWT plugin stops before the signature).
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-]*")
_JWT_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]*")
_VALUE_TAIL = re.compile(r"[^\s'\"`,;]*")


def _occurrences(line: str, value: str, plugin: BasePlugin, begin: int, stop: int) -> Iterable[tuple[int, int]]:
    """Where `value` stands in `line` between columns `begin` and `stop` (a tail may run past `stop`)."""
    start = line.find(value, begin, stop)
    while start != -1:
        end = start + len(value)
        if isinstance(plugin, HighEntropyStringsPlugin):
            if _ASSIGNED.search(line, 0, start):
                yield start, end
        else:
            if isinstance(plugin, RegexBasedDetector):
                tail = _JWT_TAIL if isinstance(plugin, JwtTokenDetector) else _TOKEN_TAIL
                match = tail.match(line, end)
                end = match.end() if match else end
            yield start, _value_end(line, end, stop)
        start = line.find(value, end, stop)


def _value_end(line: str, end: int, stop: int) -> int:
    """A value cut off by the end of its window goes on to the next quote or space."""
    if end < stop:
        return end
    match = _VALUE_TAIL.match(line, end)
    return match.end() if match else end


_PASSWORD_WORDS = re.compile(r"pass|pwd|contrase", re.IGNORECASE)


def _keyword_kind(line: str, start: int) -> str:
    return "password" if _PASSWORD_WORDS.search(line, 0, start) else "secret"


_PEM_BEGIN = re.compile(r"-{4,5} ?BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_PUTTY_END = re.compile(r"^Private-MAC:.*$")
_KEY_BODY = re.compile(r"^[A-Za-z0-9+/=\s:,-]*$")  # base64 and PEM headers (Proc-Type: 4,ENCRYPTED)


def _private_key_block(lines: list[str], first: int, column: int) -> Iterator[Span]:
    """The whole key: from its BEGIN line to its END line (or, with no END, as far as the
    base64 body goes), including a one-line PEM with literal '\\n's as in JSON credentials."""
    head = lines[first]
    begin = _PEM_BEGIN.search(head, max(0, column - 16))
    if begin is None:  # PuTTY: the key runs to its Private-MAC line
        start = max(0, column)
        last = next((n for n in range(first, len(lines)) if _PUTTY_END.match(lines[n])), len(lines) - 1)
        end_column = len(lines[last])
    else:
        start = begin.start()
        end_marker = re.compile(r"-{4,5} ?END " + re.escape(begin.group(1)) + r" ?-{4,5}")
        last, end_column = first, len(head)
        same_line = end_marker.search(head, begin.end())
        if same_line:
            end_column = same_line.end()
        else:
            for number in range(first + 1, len(lines)):
                found = end_marker.search(lines[number])
                if found:
                    last, end_column = number, found.end()
                    break
                if not _KEY_BODY.match(lines[number]):
                    last, end_column = number - 1, len(lines[number - 1])
                    break
            else:
                last, end_column = len(lines) - 1, len(lines[-1])
    if last == first:
        yield Span(first, start, end_column, PRIVATE_KEY)
        return
    yield Span(first, start, len(head), PRIVATE_KEY)
    for number in range(first + 1, last):
        yield Span(number, 0, len(lines[number]), PRIVATE_KEY, marker=False)
    yield Span(last, 0, end_column, PRIVATE_KEY, marker=False)
