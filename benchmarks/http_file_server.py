"""The web side of the http benchmarks: a loopback HTTP server for a directory of files.

Started by ``run.py`` as its own process (so serving never competes with the timing
client for its interpreter lock)::

    python http_file_server.py DIRECTORY

It serves the files of ``DIRECTORY`` with the standard library's
``ThreadingHTTPServer`` and ``SimpleHTTPRequestHandler`` on ``127.0.0.1`` and an
ephemeral port; a body goes out with ``sendfile``, so the server is never the
bottleneck of a throughput measurement. When it listens it prints one JSON line,
``{"port": PORT}``, to stdout. It exits when its stdin reaches end of file (the parent
closed it or died), on SIGTERM, or on Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


class QuietFileHandler(SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` without the access log, sending bodies with ``sendfile``."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        self.connection.sendfile(source)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Serve until stdin closes; return the exit status."""
    if len(argv) != 1:
        print("usage: http_file_server.py DIRECTORY", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFileHandler, directory=argv[0]))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    try:
        print(json.dumps({"port": server.server_address[1]}), flush=True)
        sys.stdin.read()  # returns at end of file: the parent is done (or gone)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
