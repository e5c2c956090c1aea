"""Secret redaction: what leaves the machine for a model carries no keys, tokens or passwords.

`redact(files, cache_dir)` replaces every secret Yelp's detect-secrets plugins find in the loaded
files by a `[REDACTED:kind]` marker (`detectors` finds them, `redact` applies and caches);
`redaction_wanted` is the default rule (on unless every model is the bundled local one). Files
that are secrets by name (`.env`, `id_rsa`, ...) are the loader's business (`sources.secret_files`).
"""

from __future__ import annotations

from rlm_cli.redaction.policy import redaction_wanted
from rlm_cli.redaction.redact import Finding, Redaction, redact

__all__ = ["Finding", "Redaction", "redact", "redaction_wanted"]
