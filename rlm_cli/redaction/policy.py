"""When to redact: the default rule, and the flags that override it.

Redaction is on for every model except the bundled local one (`local` or `local:PATH`), which runs
on this machine. A loopback `--api-base` does not count as local: it is often a proxy to a
provider. `--redact` forces redaction on, `--no-redact` turns it off.
"""

from __future__ import annotations

from rlm_cli.local.model_spec import is_local_model


def redaction_wanted(flag: bool | None, model: str, sub_model: str) -> bool:
    """`flag` (from --redact/--no-redact) if given; else True unless both models are local."""
    if flag is not None:
        return flag
    return not (is_local_model(model) and is_local_model(sub_model))
