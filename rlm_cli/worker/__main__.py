"""The worker process: `python -m rlm_cli.worker --fd N`.

It talks to the host over the inherited socket N only. Its own stdin is closed and its
stdout/stderr go to a log file the host reads when the worker dies.
"""

from __future__ import annotations

import argparse
import marshal
import signal
import socket
import sys

from rlm_cli.sources.context import Context
from rlm_cli.worker.protocol import (
    BlockingChannel,
    ExecuteRequest,
    InitReply,
    InitRequest,
    ProtocolError,
    ShutdownRequest,
)
from rlm_cli.worker.repl import HostLink, Repl


def serve(channel: BlockingChannel) -> None:
    """Answer the host's requests until it says shut down or closes the channel."""
    repl: Repl | None = None
    while True:
        try:
            message = channel.receive()
        except EOFError:
            return
        if isinstance(message, InitRequest):
            with open(message.context_file, "rb") as f:
                context = Context(dict(marshal.load(f)))
            repl = Repl(context, HostLink(channel))
            channel.send(InitReply(describe=context.describe()))
        elif isinstance(message, ExecuteRequest):
            if repl is None:
                raise ProtocolError("execute_request before init_request")
            channel.send(repl.run(message.cell_id, message.code, message.max_output_chars))
        elif isinstance(message, ShutdownRequest):
            return
        else:
            raise ProtocolError(f"unexpected {message.type}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m rlm_cli.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to the host")
    args = parser.parse_args()
    # SIGINT means "interrupt the running cell"; between cells it must not kill the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    try:
        serve(BlockingChannel(sock))
    except KeyboardInterrupt:
        pass  # a late cell-timeout signal; the host restarts us if it still needs us
    finally:
        sock.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
