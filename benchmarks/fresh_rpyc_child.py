"""The baseline of the factory-children benchmark: a fresh interpreter that imports rpyc
and answers one call.

Started by ``run.py`` once per sample::

    python fresh_rpyc_child.py SOCKET_PATH

It imports rpyc, listens on the Unix socket ``SOCKET_PATH`` with a ``OneShotServer``
serving ``exposed_Ping``, prints ``ready`` and serves exactly one client. This is what
a factory child costs when every child is a new interpreter: the parent times it from
``Popen`` until its first call is answered. It exits when its client has gone, or at
once when its stdin reaches end of file (the parent gave up or died).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import rpyc
from rpyc.utils.server import OneShotServer


class PingService(rpyc.Service):  # type: ignore[misc]
    """One method: the cheapest call there is."""

    def exposed_Ping(self) -> int:
        return os.getpid()


def _exit_at_end_of_stdin() -> None:
    sys.stdin.read()
    os._exit(0)


def main(argv: list[str]) -> int:
    """Serve one client on ``argv[0]``; return the exit status."""
    if len(argv) != 1:
        print("usage: fresh_rpyc_child.py SOCKET_PATH", file=sys.stderr)
        return 2
    logger = logging.getLogger("bench.fresh")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    server = OneShotServer(PingService, socket_path=argv[0], logger=logger)
    server._listen()  # bind + listen now, so the parent can connect as soon as it reads
    threading.Thread(target=_exit_at_end_of_stdin, name="stdin", daemon=True).start()
    print("ready", flush=True)
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
