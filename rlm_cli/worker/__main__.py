"""The worker process: `python -m rlm_cli.worker --fd N --policy JSON`.

It confines itself first (`sandbox.confine`: namespaces, Landlock, rlimits), while it is still
single-threaded and before it reads the context, then talks to the host over the inherited
socket N only. Imports before `confine` are this package's own modules, none of them
starts a thread. Its own stdin is closed and its stdout/stderr go to a pipe the host drains and
quotes from when the worker dies. The context arrives as an inherited descriptor (`handoff`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket

from rlm_cli.worker import handoff
from rlm_cli.worker.protocol import (
    ExecuteRequest,
    InitReply,
    InitRequest,
    ProtocolError,
    RestoreRequest,
    ShutdownRequest,
    StateRequest,
)
from rlm_cli.worker.repl import HostLink, Repl
from rlm_cli.worker.sandbox import Policy, confine


def serve(link: HostLink, isolation: dict[str, str]) -> None:
    """Answer the host's requests until it says shut down or closes the channel."""
    repl: Repl | None = None
    while True:
        try:
            message = link.receive()
        except EOFError:
            return
        if isinstance(message, InitRequest):
            context = handoff.load(message.context_fd)
            repl = Repl(context, link)
            link.send(InitReply(isolation=isolation))
        elif isinstance(message, ExecuteRequest):
            if repl is None:
                raise ProtocolError("execute_request before init_request")
            link.send(repl.run(message.cell_id, message.code, message.max_output_chars))
        elif isinstance(message, StateRequest | RestoreRequest):
            if repl is None:
                raise ProtocolError(f"{message.type} before init_request")
            link.send(repl.save_state(message) if isinstance(message, StateRequest) else repl.restore_state(message))
        elif isinstance(message, ShutdownRequest):
            return
        else:
            raise ProtocolError(f"unexpected {message.type}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rlm_cli.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the host")
    parser.add_argument("--policy", help="sandbox.Policy as JSON; without it, no confinement")
    args = parser.parse_args()
    isolation = confine(Policy.from_json(args.policy)) if args.policy else {}
    # SIGINT means "interrupt the running cell"; between cells it must not kill the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    try:
        serve(HostLink(sock), isolation)
    except KeyboardInterrupt:
        pass  # a late cell-timeout signal; the host restarts us if it still needs us
    finally:
        sock.close()
    # Not sys.exit: a thread a cell left running must not keep the worker alive.
    os._exit(0)


if __name__ == "__main__":
    main()
