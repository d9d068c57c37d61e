"""The serving side of ``tls.py``: one BitBucket behind three listeners in one process.

Started as its own process::

    python tls_server.py DIRECTORY

* ``unix`` — kos's own server (``kos_core._rpc.Server``) on ``DIRECTORY/b.sock``;
* ``tls``  — the same server on loopback TCP with TLS 1.3, its certificate issued by
  an authority made for this run (as a kernel alone does);
* ``rpyc_tcp`` — plain rpyc on loopback TCP, tuned as kos was before TLS (frame
  compression off, ``TCP_NODELAY``): what a call over TCP cost without encryption.

Prints one JSON line (``{"unix": SBH, "tls": SBH, "ca": PEM, "rpyc_tcp": PORT}``) when
every listener is up; exits when its stdin reaches end of file.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from rpyc.utils.server import ThreadedServer

from kos_core import _rpc
from kos_core._net import tls, wire
from kos_plugins_bitbucket.api import BitBucket as BitBucketAPI
from kos_plugins_bitbucket.plugin import BitBucket
from plain_rpyc_server import UncompressedBucketService, _quiet_logger

TOKEN = "bench-token-0123456789"
CAPACITY = 10_000_000


class NoDelayService(UncompressedBucketService):
    """Plain rpyc, compression off and ``TCP_NODELAY`` on the server's side."""

    def on_connect(self, conn: Any) -> None:
        super().on_connect(conn)
        conn._channel.stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(argv: list[str]) -> int:
    """Serve until stdin closes; return the exit status."""
    directory = Path(argv[0])
    bucket = BitBucket(CAPACITY)

    def authorize(token: str) -> _rpc.ServerSession | None:
        return _rpc.ServerSession(bucket, BitBucketAPI) if wire.tokens_equal(token, TOKEN) else None

    authority = tls.new_authority("bench")
    pair = directory / "tls.pem"
    pair.write_bytes(tls.write_pem_pair(authority.issue("bench", ["127.0.0.1"], tls.RUN_VALIDITY)))
    unix = _rpc.Server(wire.Address(path=str(directory / "b.sock")), authorize, name="unix")
    secured = _rpc.Server(
        wire.Address(host="127.0.0.1"), authorize, name="tls", tls=tls.server_context(str(pair))
    )
    plain = ThreadedServer(
        NoDelayService(BitBucket(CAPACITY)),
        hostname="127.0.0.1",
        port=0,
        logger=_quiet_logger("bench.rpyc_tcp"),
    )
    plain._listen()
    threading.Thread(target=plain.start, daemon=True).start()
    try:
        unix.start()
        secured.start()
        info = {
            "unix": wire.format_sbh(unix.address, TOKEN),
            "tls": wire.format_sbh(secured.address, TOKEN),
            "ca": authority.cert_pem,
            "rpyc_tcp": plain.port,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    finally:
        unix.close()
        secured.close()
        plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
