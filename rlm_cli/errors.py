"""The one error tree of rlm, and the exit code each branch maps to.

    RlmError                 exit 1  a bug: unexpected state
    ├── UsageError           exit 2  bad option or argument
    ├── InputError           exit 3  source missing, unreadable, empty, filtered to nothing
    ├── ModelError           exit 4  no model configured, auth failed, provider unreachable
    │   └── ContextWindowError       a prompt larger than the model's window
    ├── LimitError           exit 5  iterations, cost, time or sub-calls ran out
    ├── WorkerError          exit 1  the worker failed to start or broke protocol for good
    └── Interrupted          exit 130  Ctrl-C

Foreign errors (litellm, the worker pipe, the file system) are translated into these where they
enter; `rlm_cli.cli.app` maps them to a one-line message and the exit code in one place. An
error raised after a run had started carries `result`: how far the run got (iterations, usage,
duration), so `--json` and `run_end` tell the truth about a failed run.
"""

from __future__ import annotations

from typing import Any


class RlmError(Exception):
    """Base of every error rlm raises on purpose."""

    exit_code = 1
    result: Any = None  # set by the engine or the API when a run had started


class UsageError(RlmError):
    exit_code = 2


class InputError(RlmError):
    exit_code = 3


class ModelError(RlmError):
    exit_code = 4


class ContextWindowError(ModelError):
    """A prompt does not fit the model's window; retrying cannot help."""


class LimitError(RlmError):
    exit_code = 5


class Interrupted(RlmError):
    exit_code = 130


class WorkerError(RlmError):
    """The worker process died or broke protocol; the host restarts it."""
