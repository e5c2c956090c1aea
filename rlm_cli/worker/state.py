"""Inside the worker: the REPL's variables pickled into a file, and restored from one.

This is how a follow-up (`rlm ask -c`) or a resumed run (`rlm resume`) finds the variables an
earlier run left. Only a worker ever unpickles: the file is written by one sandboxed worker and
read by the next, which runs model-written code at the same trust level anyway; the host only
moves the bytes (rlm_cli.runs.state) and never calls `pickle.loads`.

Both ends use a descriptor the host opened and the worker inherited, so no path is involved
(the sandbox may not let the worker open any file outside its scratch directory). The file is a
pickled `{"v": FORMAT, "variables": {name: pickled value}}`: one pickle per variable, so one
that no longer loads (its class was defined in the REPL) costs only itself. `context` and the
REPL functions are pickled as references (`persistent_id`) and come back as the new worker's
own, so `pair = (context, 3)` survives and the old input is never written out. Variables whose
pickle would pass the limits are skipped, each named with the reason, and so are functions and
classes defined in the REPL (a pickle holds only their name).
"""

from __future__ import annotations

import io
import os
import pickle
import types
from collections.abc import Mapping
from typing import Any

from rlm_cli.units import format_size
from rlm_cli.worker.protocol import RestoreReply, Skipped, StateReply, Variable

FORMAT = 1
MAX_NAMES_KEPT = 1_000  # variables listed in a reply (a namespace of a million names is not)


class TooLarge(Exception):
    """A variable's pickle passed its limit; raised by the writer, so pickling stops early."""


class _CappedBuffer(io.BytesIO):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self._cap = cap

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self._cap:
            raise TooLarge
        return super().write(data)


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, references: Mapping[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._references = references

    def persistent_id(self, obj: Any) -> str | None:
        return self._references.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, references: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._references = references

    def persistent_load(self, pid: Any) -> Any:
        if pid not in self._references:
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._references[pid]


def user_variables(namespace: Mapping[str, Any], baseline: set[str]) -> dict[str, Any]:
    """The variables a run made: not the REPL's own names, not `_`-names, not modules."""
    return {
        name: value
        for name, value in namespace.items()
        if name not in baseline and not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def save(
    fd: int, variables: Mapping[str, Any], reserved: Mapping[str, Any], *, max_bytes: int, max_variable_bytes: int
) -> StateReply:
    """Pickle `variables` into `fd` (from offset 0), skipping what does not pickle or fit."""
    references = {id(value): name for name, value in reserved.items()}
    pickled: dict[str, bytes] = {}
    saved: list[Variable] = []
    skipped: list[Skipped] = []
    total = 0
    for name, value in variables.items():
        why = None
        if isinstance(value, (types.FunctionType, type)):
            why = "defined in the REPL: define it again"
        else:
            room = max_bytes - total
            buffer = _CappedBuffer(min(max_variable_bytes, room))
            try:
                _Pickler(buffer, references).dump(value)
            except TooLarge:
                why = (
                    f"larger than the {format_size(max_variable_bytes)} limit"
                    if max_variable_bytes <= room
                    else f"larger than the {format_size(room)} left of the {format_size(max_bytes)} for all variables"
                )
            except Exception as exc:  # whatever the value's own __reduce__ raises
                why = f"cannot be pickled ({type(exc).__name__})"
        if why is not None:
            skipped.append({"name": name, "why": why})
            continue
        data = buffer.getvalue()
        pickled[name] = data
        total += len(data)
        saved.append({"name": name, "type": type(value).__name__, "nbytes": len(data)})
    blob = pickle.dumps({"v": FORMAT, "variables": pickled}, protocol=pickle.HIGHEST_PROTOCOL)
    written = 0
    while written < len(blob):
        written += os.pwrite(fd, memoryview(blob)[written:], written)
    return StateReply(saved=saved[:MAX_NAMES_KEPT], skipped=skipped[:MAX_NAMES_KEPT], nbytes=len(blob))


def restore(fd: int, namespace: dict[str, Any], reserved: Mapping[str, Any]) -> RestoreReply:
    """Load the variables pickled in `fd` into `namespace`; the REPL's own names are never replaced."""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        box = pickle.loads(data)
        if not isinstance(box, dict) or box.get("v") != FORMAT or not isinstance(box.get("variables"), dict):
            raise ValueError("not a state file of this version")
    except Exception as exc:  # a truncated or foreign file: the run goes on without its variables
        return RestoreReply(restored=[], skipped=[], error=f"{type(exc).__name__}: {exc}"[:300])
    restored: list[Variable] = []
    skipped: list[Skipped] = []
    for name, blob in box["variables"].items():
        if not isinstance(name, str) or not isinstance(blob, bytes) or name in reserved or name.startswith("_"):
            continue
        try:
            value = _Unpickler(io.BytesIO(blob), reserved).load()
        except Exception as exc:  # e.g. an instance of a class the earlier run defined in the REPL
            skipped.append({"name": name, "why": f"does not load ({type(exc).__name__}: {exc})"[:200]})
            continue
        namespace[name] = value
        restored.append({"name": name, "type": type(value).__name__, "nbytes": len(blob)})
    return RestoreReply(restored=restored[:MAX_NAMES_KEPT], skipped=skipped[:MAX_NAMES_KEPT])
