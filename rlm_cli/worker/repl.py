"""Inside the worker: the IPython shell, the REPL names of DESIGN.md, and running one cell.

The names the root model relies on (`context`, `llm_query`, `FINAL`, ...) are rebuilt after every
cell, so a cell that overwrites or deletes one does not break the run.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from rlm_cli.sources.context import Context
from rlm_cli.worker import llm_map as mapping
from rlm_cli.worker.protocol import (
    BlockingChannel,
    ExecuteReply,
    LlmReply,
    LlmRequest,
    Message,
    ProtocolError,
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
)


class SubcallError(RuntimeError):
    """A sub-call failed; the message says why in words the model can act on."""


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


class HostLink:
    """The worker's one channel to the host: the main loop's messages and the cells' sub-calls.

    Every send and receive holds one lock, so a thread a cell started cannot read a message
    meant for the main loop, nor interleave its bytes with a reply. Sub-calls are served only
    while a cell runs, and only from the worker process itself, not from a fork of it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._channel = BlockingChannel(sock)
        self._lock = threading.Lock()
        self._next_id = 0
        self.pid = os.getpid()
        self.in_cell = False

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
        with self._lock:
            if not self.in_cell:
                raise SubcallError("sub-calls can only be made while a cell runs (a thread outlived its cell)")
            self._next_id += 1
            req_id = self._next_id
            request = LlmRequest(req_id, prompts, model, recursive=contexts is not None, contexts=contexts)
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
        self._reserved = self._reserved_names()
        self._shell.user_ns.update(self._reserved)
        self._baseline = set(self._shell.user_ns)

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

        def llm_map(instruction: str, items: Iterable[object]) -> list[str]:
            """One sub-model answer to `instruction` per item (lines, hits, chunks), asked in batches."""
            return mapping.llm_map(llm_query_batched, instruction, items)

        def FINAL(answer: object) -> None:
            """End the run with str(answer)."""
            if self._final is None:
                self._final = str(answer)

        def FINAL_VAR(name: object) -> None:
            """End the run with the value of the variable called `name`, of any size."""
            if not isinstance(name, str):
                raise TypeError("FINAL_VAR takes the variable's name as a string, e.g. FINAL_VAR('answer')")
            key = name.strip().strip("'\"")
            if key not in self._shell.user_ns:
                raise NameError(f"FINAL_VAR: no variable named {key!r}; define it first, or use FINAL(value)")
            FINAL(self._shell.user_ns[key])

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
        }

    def _user_variables(self) -> dict[str, Any]:
        import types

        return {
            k: v
            for k, v in self._shell.user_ns.items()
            if k not in self._baseline
            and not k.startswith("_")
            and not isinstance(v, types.ModuleType)
            and not callable(v)
        }

    def _restore(self) -> list[str]:
        ns = self._shell.user_ns
        restored = [name for name, value in self._reserved.items() if ns.get(name) is not value]
        ns.update(self._reserved)
        return restored

    # -- running a cell -------------------------------------------------------------------

    def run(self, cell_id: int, code: str, max_output_chars: int) -> ExecuteReply:
        out = CappedWriter(max_output_chars)
        saved = sys.stdout, sys.stderr
        self._final = None
        started = time.monotonic()
        error: str | None = None
        sys.stdout = sys.stderr = out
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # the host's cell timeout
        self._link.in_cell = True
        try:
            result = self._shell.run_cell(code, store_history=True)
            exc = result.error_before_exec or result.error_in_exec
            if exc is not None:
                error = type(exc).__name__
        except KeyboardInterrupt:  # landed outside IPython's own handler
            error = "KeyboardInterrupt"
        finally:
            if os.getpid() != self._link.pid:  # a fork of the worker finished the cell: it must not answer
                os._exit(0)
            self._link.in_cell = False
            signal.signal(signal.SIGINT, previous)
            sys.stdout, sys.stderr = saved
        return ExecuteReply(
            cell_id=cell_id,
            output=out.render(),
            output_chars=out.total,
            error=error,
            final=self._final,
            restored=self._restore(),
            duration_s=time.monotonic() - started,
        )
