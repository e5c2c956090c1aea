"""Inside the worker: the IPython shell, the REPL names of DESIGN.md, and running one cell.

The names the root model relies on (`context`, `llm_query`, `FINAL`, ...) are rebuilt after every
cell, so a cell that overwrites or deletes one does not break the run. So are the namespaces every
cell shares beyond its variables (`Patches`): the builtins module and the classes of `context`
and of what its methods return, so `builtins.print = ...` or `type(context).grep = ...` lasts
only until the cell ends. Modules a cell imports and patches (`re.compile = ...`) are the
cell's own state, like its variables, and are not restored.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from rlm_cli.sources.context import Chunk, Context, Hit
from rlm_cli.worker import llm_map as mapping
from rlm_cli.worker import state
from rlm_cli.worker.protocol import (
    MAX_BATCH,
    BlockingChannel,
    ExecuteReply,
    LlmReply,
    LlmRequest,
    Message,
    ProtocolError,
    RestoreReply,
    RestoreRequest,
    StateReply,
    StateRequest,
)

RESERVED = (
    "context",
    "llm_query",
    "llm_query_batched",
    "rlm_query",
    "rlm_query_batched",
    "FINAL",
    "FINAL_VAR",
    "SHOW_VARS",
    "llm_map",
    "llm_find",
)


class SubcallError(RuntimeError):
    """A sub-call failed; the message says why in words the model can act on."""


class OutlivedCellError(RuntimeError):
    """A thread that outlived the cell that started it called a REPL function."""


class CellGate:
    """Which threads may act for the running cell: sub-calls and FINAL/FINAL_VAR check it.

    Every thread alive when a cell starts, other than the main thread that runs every cell,
    belongs to an earlier cell: its calls are refused, and so is any call between cells. One
    mechanism for both, so a leftover thread can neither have its sub-calls served in a later
    cell nor end a later cell's turn. Threads are told apart by their kernel thread id where
    /proc lists them (ids are not reused within a run), by Python's thread ident elsewhere.
    """

    def __init__(self) -> None:
        self.cell_id: int | None = None
        self._older: set[int] = set()
        self._ident = threading.get_ident

    def open(self, cell_id: int) -> None:
        try:
            self._older = {int(task) for task in os.listdir("/proc/self/task")}
            self._ident = threading.get_native_id
        except OSError:
            self._older = set(sys._current_frames())
            self._ident = threading.get_ident
        self._older.discard(self._ident())
        self.cell_id = cell_id

    def close(self) -> None:
        self.cell_id = None

    def check(self, what: str) -> int:
        """The running cell's id, or OutlivedCellError when the calling thread is not its own."""
        if self.cell_id is None or self._ident() in self._older:
            raise OutlivedCellError(
                f"{what} refused: this thread outlived the cell that started it; call {what} in the cell itself"
            )
        return self.cell_id


class CappedWriter(io.TextIOBase):
    """A stdout that keeps the head and the tail of what a cell prints and counts the rest.

    A cell that prints gigabytes costs the worker only `cap` characters of memory.
    """

    encoding = "utf-8"

    def __init__(self, cap: int) -> None:
        self._head_cap = cap // 2
        self._tail_cap = cap - self._head_cap
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        written = len(s)
        self.total += written
        room = self._head_cap - self._head_len
        if room > 0:
            self._head.append(s[:room])
            self._head_len += min(room, len(s))
            s = s[room:]
        if s:
            self._tail.append(s[-self._tail_cap :] if self._tail_cap else "")
            self._tail_len += len(self._tail[-1])
            while self._tail and self._tail_len - len(self._tail[0]) >= self._tail_cap:
                self._tail_len -= len(self._tail.popleft())
        return written

    def render(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)[-self._tail_cap :] if self._tail_cap else ""
        if len(head) + len(tail) >= self.total:
            return head + tail
        omitted = self.total - len(head) - len(tail)
        return (
            f"{head}\n[... {omitted:,} characters omitted; the cell printed {self.total:,} in all."
            f" Print less, or slice what you print ...]\n{tail}"
        )


class Patches:
    """The pristine state of namespaces shared by every cell, and its restoration after one.

    Taken once, when the REPL starts. `restore` undoes every change: values put back, names a
    cell added removed (so a cell cannot keep its own builtins either), and says what it undid.
    """

    def __init__(self, classes: tuple[type, ...] = (Context, Chunk, Hit)) -> None:
        self._builtins = dict(builtins.__dict__)
        self._classes = [(cls, dict(vars(cls))) for cls in classes]

    def restore(self) -> list[str]:
        undone: list[str] = []
        # Builtins first, with dict operations only: a cell may have replaced len, list or setattr.
        current = builtins.__dict__
        for name in [n for n in current if n not in self._builtins]:
            del current[name]
            undone.append(f"builtins.{name}")
        for name, value in self._builtins.items():
            if current.get(name, _MISSING) is not value:
                current[name] = value
                undone.append(f"builtins.{name}")
        for cls, saved in self._classes:
            now = vars(cls)
            for name in [n for n in now if n not in saved]:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(cls, name)
                    undone.append(f"{cls.__name__}.{name}")
            for name, value in saved.items():
                if now.get(name, _MISSING) is not value:
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(cls, name, value)
                        undone.append(f"{cls.__name__}.{name}")
        return undone


_MISSING = object()
MAX_RESTORED = 32  # names reported back per cell (the protocol's limit is MAX_NAMES)


class HostLink:
    """The worker's one channel to the host: the main loop's messages and the cells' sub-calls.

    Every send and receive holds one lock, so a thread a cell started cannot read a message
    meant for the main loop, nor interleave its bytes with a reply. Sub-calls are served only
    for the running cell (`gate`), and only from the worker process itself, not from a fork.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._channel = BlockingChannel(sock)
        self._lock = threading.Lock()
        self._next_id = 0
        self.pid = os.getpid()
        self.gate = CellGate()

    def receive(self) -> Message:
        with self._lock:
            return self._channel.receive()

    def send(self, message: Message) -> None:
        with self._lock:
            self._channel.send(message)

    def ask(
        self, prompts: list[str], model: str | None = None, contexts: list[str | None] | None = None
    ) -> list[dict[str, str]]:
        """Plain sub-calls, or (with `contexts`) recursive sub-RLMs over those contexts."""
        if os.getpid() != self.pid:
            raise SubcallError("sub-calls cannot be made from a forked process; call llm_query in the cell itself")
        if len(prompts) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH:,} prompts, not {len(prompts):,}; send several batches")
        with self._lock:
            cell_id = self.gate.check("sub-calls")
            self._next_id += 1
            req_id = self._next_id
            request = LlmRequest(req_id, prompts, model, recursive=contexts is not None, contexts=contexts, cell_id=cell_id)
            self._channel.send(request)
            while True:
                reply = self._channel.receive()
                if not isinstance(reply, LlmReply):
                    raise ProtocolError(f"expected llm_reply, got {reply.type}")
                if reply.req_id == req_id:  # replies to an interrupted earlier request are dropped
                    return reply.results


def _as_prompt(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def _prompts(prompts: Iterable[str]) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of str, not one str")
    return [_as_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]


def _one(results: list[dict[str, str]]) -> str:
    """A single sub-call's answer; its failure is an exception the model sees in the cell."""
    (result,) = results
    if "error" in result:
        raise SubcallError(result["error"])
    return result["text"]


def _many(results: list[dict[str, str]]) -> list[str]:
    """A batch's answers; a failed prompt leaves an `ERROR: ...` string in its own slot."""
    return [r["text"] if "text" in r else f"ERROR: {r.get('error')}" for r in results]


def _json_form(value: object) -> str | None:
    """A non-str answer as JSON text, when it is JSON data (a dict, a list, a number...)."""
    if isinstance(value, str) or not isinstance(value, (dict, list, tuple, int, float, bool, type(None))):
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None


def _source_list(sources: object) -> list[Any]:
    """FINAL's `sources` as JSON data: each a "path:line ..." string or a {path, line, quote} dict
    (a (path, line, quote) tuple becomes the dict)."""
    items = [sources] if isinstance(sources, (str, dict)) else sources
    if not isinstance(items, (list, tuple)):
        items = [items]
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)) and 2 <= len(item) <= 3:  # (path, line[, quote])
            item = dict(zip(("path", "line", "quote"), item))
        if isinstance(item, dict):
            out.append({str(k): v if isinstance(v, (str, int)) else str(v) for k, v in item.items()})
        else:
            out.append(str(item))
    return out


class Repl:
    """One IPython shell holding `context`; runs cells and reports what they printed and ended with."""

    def __init__(self, context: Context, link: HostLink) -> None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        config.InteractiveShell.xmode = "Plain"
        self._shell = InteractiveShell.instance(config=config)
        self._shell.displayhook.write_output_prompt = lambda: None  # no "Out[n]:" noise for the model
        self._context = context
        self._link = link
        self._final: str | None = None
        self._final_json: str | None = None
        self._sources: list[Any] | None = None
        self._reserved = self._reserved_names()
        self._shell.user_ns.update(self._reserved)
        self._baseline = set(self._shell.user_ns)
        self._patches = Patches()

    # -- the REPL names -------------------------------------------------------------------

    def _reserved_names(self) -> dict[str, Any]:
        link = self._link

        def llm_query(prompt: str, context: str | None = None, model: str | None = None) -> str:
            """Ask the sub-model one question; `context`, if given, is appended to the prompt."""
            text = _as_prompt(prompt, "prompt")
            if context is not None:
                text = f"{text}\n\n{_as_prompt(context, 'context')}"
            return _one(link.ask([text], model))

        def llm_query_batched(prompts: Iterable[str], model: str | None = None) -> list[str]:
            """Ask the sub-model many questions at once, concurrently; answers come back in order."""
            texts = _prompts(prompts)
            return _many(link.ask(texts, model)) if texts else []

        def rlm_query(prompt: str, context: str | None = None) -> str:
            """A recursive sub-RLM over `context` while depth allows; at the depth limit, an llm_query."""
            ctx = None if context is None else _as_prompt(context, "context")
            return _one(link.ask([_as_prompt(prompt, "prompt")], contexts=[ctx]))

        def rlm_query_batched(prompts: Iterable[str], contexts: Iterable[str | None] | None = None) -> list[str]:
            """rlm_query over many prompts (and optional contexts), concurrently; answers in order."""
            texts = _prompts(prompts)
            ctxs: list[str | None] = [None] * len(texts)
            if contexts is not None:
                ctxs = [None if c is None else _as_prompt(c, "context") for c in contexts]
            if len(ctxs) != len(texts):
                raise ValueError(f"{len(texts)} prompts but {len(ctxs)} contexts")
            return _many(link.ask(texts, contexts=ctxs)) if texts else []

        def llm_map(instruction: str, items: Iterable[object] | None = None) -> list[str] | str:
            """One sub-model answer to `instruction` per item (lines, hits, chunks), asked in batches.

            Without items it is `llm_query(instruction)`: small models reach for llm_map when they
            mean one question about the text they pasted in, and an error there ends in a stall.
            """
            if items is None:
                return llm_query(instruction)
            return mapping.llm_map(llm_query_batched, instruction, items)

        def llm_find(question: str, pieces: Iterable[object]) -> list[mapping.Found]:
            """Ask every piece `question`; keep the answers a piece holds, each with its line, likeliest first."""
            return mapping.llm_find(llm_query_batched, question, pieces)

        def FINAL(answer: object, sources: object = None) -> None:
            """End the run with str(answer); `sources` are file:line references backing it."""
            link.gate.check("FINAL")
            if self._final is None:
                self._final = str(answer)
                self._final_json = _json_form(answer)
                self._sources = None if sources is None else _source_list(sources)

        def FINAL_VAR(name: object, sources: object = None) -> None:
            """End the run with the value of the variable called `name`, of any size."""
            if not isinstance(name, str):
                raise TypeError("FINAL_VAR takes the variable's name as a string, e.g. FINAL_VAR('answer')")
            link.gate.check("FINAL_VAR")
            key = name.strip().strip("'\"")
            if key not in self._shell.user_ns:
                raise NameError(f"FINAL_VAR: no variable named {key!r}; define it first, or use FINAL(value)")
            FINAL(self._shell.user_ns[key], sources)

        def SHOW_VARS() -> None:
            """Print the variables defined so far, with their types and sizes."""
            rows = []
            for var, value in self._user_variables().items():
                size = f", len {len(value):,}" if hasattr(value, "__len__") else ""
                rows.append(f"{var}: {type(value).__name__}{size}")
            print("\n".join(rows) if rows else "(no variables yet)")

        return {
            "context": self._context,
            "llm_query": llm_query,
            "llm_query_batched": llm_query_batched,
            "rlm_query": rlm_query,
            "rlm_query_batched": rlm_query_batched,
            "FINAL": FINAL,
            "FINAL_VAR": FINAL_VAR,
            "SHOW_VARS": SHOW_VARS,
            "llm_map": llm_map,
            "llm_find": llm_find,
        }

    def _user_variables(self) -> dict[str, Any]:
        variables = state.user_variables(self._shell.user_ns, self._baseline)
        return {k: v for k, v in variables.items() if not callable(v)}

    # -- the variables, for the next run (worker.state) ----------------------------------------

    def save_state(self, request: StateRequest) -> StateReply:
        variables = state.user_variables(self._shell.user_ns, self._baseline)
        limits = {"max_bytes": request.max_bytes, "max_variable_bytes": request.max_variable_bytes}
        return state.save(request.fd, variables, self._reserved, **limits)

    def restore_state(self, request: RestoreRequest) -> RestoreReply:
        return state.restore(request.fd, self._shell.user_ns, self._reserved)

    def _restore(self) -> list[str]:
        ns = self._shell.user_ns
        restored = [name for name, value in self._reserved.items() if ns.get(name) is not value]
        ns.update(self._reserved)
        return restored

    # -- running a cell -------------------------------------------------------------------

    def run(self, cell_id: int, code: str, max_output_chars: int) -> ExecuteReply:
        out = CappedWriter(max_output_chars)
        saved = sys.stdout, sys.stderr
        self._final = self._final_json = self._sources = None
        started = time.monotonic()
        error: str | None = None
        sys.stdout = sys.stderr = out
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # the host's cell timeout
        self._link.gate.open(cell_id)
        try:
            result = self._shell.run_cell(code, store_history=True)
            exc = result.error_before_exec or result.error_in_exec
            if exc is not None:
                error = type(exc).__name__
        except KeyboardInterrupt:  # landed outside IPython's own handler
            error = "KeyboardInterrupt"
        finally:
            patched = self._patches.restore()  # first: what follows runs on the real builtins
            if os.getpid() != self._link.pid:  # a fork of the worker finished the cell: it must not answer
                os._exit(0)
            self._link.gate.close()
            signal.signal(signal.SIGINT, previous)
            sys.stdout, sys.stderr = saved
        return ExecuteReply(
            cell_id=cell_id,
            output=out.render(),
            output_chars=out.total,
            error=error,
            final=self._final,
            final_json=self._final_json,
            sources=self._sources,
            restored=(self._restore() + patched)[:MAX_RESTORED],
            duration_s=time.monotonic() - started,
        )
