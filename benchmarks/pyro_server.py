"""The Pyro5 side of the start-up benchmark: a dict-backed bucket served by a Pyro5 daemon.

Started by ``startup.py`` as its own process::

    python pyro_server.py SOCKET_PATH

It serves one object with ``get(name)`` and ``set(name, value)`` on a Pyro5 daemon
listening on the Unix socket ``SOCKET_PATH`` (as a kos plugin serves on a Unix socket),
and prints one JSON line ``{"uri": "PYRO:bucket@./u:SOCKET_PATH"}`` once it listens. It
exits when its stdin reaches end of file (the parent closed it or died), on SIGTERM, or
on Ctrl-C. Pyro5 is a benchmark-only dependency (``pip install Pyro5``).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType

import Pyro5.api


@Pyro5.api.expose
class Bucket:
    """Values by name, in a dict."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str:
        return self._values[name]

    def set(self, name: str, value: str) -> None:
        self._values[name] = value


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Serve until stdin closes; return the exit status."""
    if len(argv) != 1:
        print("usage: pyro_server.py SOCKET_PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    daemon = Pyro5.api.Daemon(unixsocket=argv[0])
    try:
        uri = daemon.register(Bucket(), "bucket")
        threading.Thread(target=daemon.requestLoop, name="pyro", daemon=True).start()
        print(json.dumps({"uri": str(uri)}))
        sys.stdout.flush()
        sys.stdin.read()  # returns at end of file: the parent is done (or gone)
    except KeyboardInterrupt:
        pass
    finally:
        daemon.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
