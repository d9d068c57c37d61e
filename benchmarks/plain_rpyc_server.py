"""The plain-rpyc side of the benchmark: a BitBucket served with nothing but rpyc.

Started by ``run.py`` as its own process::

    python plain_rpyc_server.py DIRECTORY

It serves the bitbucket plugin's own implementation class
(``kos_plugins_bitbucket.plugin.BitBucket``) through an ``rpyc.Service`` with
``exposed_Set`` / ``exposed_Get`` on three listeners, each with its own bucket:

* ``tuned``       — Unix socket ``DIRECTORY/tuned.sock``, frame compression off on the
  server side (the client turns it off on its side): the fair baseline for kos.
* ``default``     — Unix socket ``DIRECTORY/default.sock``, rpyc's defaults.
* ``default_tcp`` — loopback TCP ``127.0.0.1:<ephemeral port>``, rpyc's defaults
  (no ``TCP_NODELAY``).

When every listener is up it prints one JSON line with their addresses
(``{"tuned": PATH, "default": PATH, "default_tcp": PORT}``) to stdout. It exits when
its stdin reaches end of file (the parent closed it or died), on SIGTERM, or on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import rpyc
from rpyc.utils.server import ThreadedServer

from kos_plugins_bitbucket.plugin import BitBucket

CAPACITY = 10_000_000


class BucketService(rpyc.Service):  # type: ignore[misc]
    """``Set`` and ``Get`` of one BitBucket, exposed the plain rpyc way."""

    def __init__(self, bucket: BitBucket) -> None:
        super().__init__()
        self._bucket = bucket

    def exposed_Set(self, name: str, data: bytes) -> None:
        self._bucket.Set(name, data)

    def exposed_Get(self, name: str) -> bytes:
        return self._bucket.Get(name)


class UncompressedBucketService(BucketService):
    """The same service with frame compression off on the server's side of each connection."""

    def on_connect(self, conn: Any) -> None:
        conn._channel.compress = False


def _quiet_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _serve_in_background(server: ThreadedServer) -> None:
    threading.Thread(target=server.start, name=f"serve-{server.port}", daemon=True).start()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Serve until stdin closes; return the exit status."""
    if len(argv) != 1:
        print("usage: plain_rpyc_server.py DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    signal.signal(signal.SIGTERM, _stop)
    servers = [
        ThreadedServer(
            UncompressedBucketService(BitBucket(CAPACITY)),
            socket_path=str(directory / "tuned.sock"),
            logger=_quiet_logger("bench.tuned"),
        ),
        ThreadedServer(
            BucketService(BitBucket(CAPACITY)),
            socket_path=str(directory / "default.sock"),
            logger=_quiet_logger("bench.default"),
        ),
        ThreadedServer(
            BucketService(BitBucket(CAPACITY)),
            hostname="127.0.0.1",
            port=0,
            logger=_quiet_logger("bench.default_tcp"),
        ),
    ]
    try:
        for server in servers:
            server._listen()  # bind + listen now, so the addresses below are live
            _serve_in_background(server)
        tuned, default, default_tcp = (server.port for server in servers)
        print(json.dumps({"tuned": tuned, "default": default, "default_tcp": default_tcp}))
        sys.stdout.flush()
        sys.stdin.read()  # returns at end of file: the parent is done (or gone)
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
