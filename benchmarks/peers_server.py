"""The servers ``peers.py`` compares kos with, in one helper process.

Started by ``peers.py`` as its own process::

    python peers_server.py DIRECTORY

Each serves the bitbucket plugin's own class (``kos_plugins_bitbucket.plugin.BitBucket``,
one bucket each) on a Unix socket in ``DIRECTORY``:

* ``pyro``    — ``pyro.sock``: a Pyro5 daemon (thread pool server) exposing ``Set`` and
  ``Get``; clients use the msgpack serializer.
* ``msgpack`` — ``msgpack.sock``: a minimal hand-written RPC, a thread per connection;
  a message is its length (4 bytes, big-endian) and ``msgpack([method, args])``, the
  reply its length and ``msgpack([ok, value])``. No checks, no timeouts: a floor for
  a Python RPC with a fast serializer.
* ``echo``    — ``echo.sock``: no RPC at all. A message is its length and a payload
  whose first 4 bytes say how long the answer is; the answer is that many bytes
  (made once per size) behind its length. The floor for a Python process answering
  on a socket.

When all listen it prints one JSON line with their paths. It exits when its stdin
reaches end of file, on SIGTERM, or on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack
import Pyro5.api
from Pyro5 import config as pyro_config

from kos_plugins_bitbucket.plugin import BitBucket

CAPACITY = 10_000_000
LENGTH = struct.Struct("!L")


@Pyro5.api.expose
class PyroBucket:
    """``Set`` and ``Get`` of one BitBucket, the Pyro5 way."""

    def __init__(self) -> None:
        self._bucket = BitBucket(CAPACITY)

    def Set(self, name: str, data: bytes) -> None:
        self._bucket.Set(name, data)

    def Get(self, name: str) -> bytes:
        return self._bucket.Get(name)


def recv_exact(sock: socket.socket, count: int) -> bytearray | None:
    """Exactly ``count`` bytes in one buffer, or ``None`` at end of file."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:])
        if not n:
            return None
        got += n
    return buffer


def recv_message(sock: socket.socket) -> bytearray | None:
    """One length-prefixed message, or ``None`` at end of file."""
    header = recv_exact(sock, LENGTH.size)
    return None if header is None else recv_exact(sock, LENGTH.unpack(header)[0])


def send_message(sock: socket.socket, body: bytes) -> None:
    """One length-prefixed message, header and body in one system call."""
    parts: list[Any] = [LENGTH.pack(len(body)), body]
    total = sum(len(p) for p in parts)
    sent = sock.sendmsg(parts)
    if sent < total:  # rare on a blocking socket: finish the rest
        sock.sendall((parts[0] + parts[1])[sent:])


def serve_msgpack(sock: socket.socket, bucket: BitBucket) -> None:
    methods: dict[str, Callable[..., Any]] = {"Get": bucket.Get, "Set": bucket.Set}
    with sock:
        while (message := recv_message(sock)) is not None:
            method, args = msgpack.unpackb(message)
            try:
                reply = [True, methods[method](*args)]
            except Exception as exc:
                reply = [False, str(exc)]
            send_message(sock, msgpack.packb(reply))


def serve_echo(sock: socket.socket, answers: dict[int, bytes]) -> None:
    with sock:
        while (message := recv_message(sock)) is not None:
            size = LENGTH.unpack_from(message)[0]
            answer = answers.get(size)
            if answer is None:
                answer = answers[size] = os.urandom(size)
            send_message(sock, answer)


def accept_loop(listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


def listen(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    return listener


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    """Serve until stdin closes; return the exit status."""
    if len(argv) != 1:
        print("usage: peers_server.py DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    signal.signal(signal.SIGTERM, _stop)
    pyro_config.SERVERTYPE = "thread"
    pyro_config.THREADPOOL_SIZE = 64
    pyro_path = directory / "pyro.sock"
    daemon = Pyro5.api.Daemon(unixsocket=str(pyro_path))
    daemon.register(PyroBucket(), objectId="bucket")
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    listeners: list[socket.socket] = []
    bucket = BitBucket(CAPACITY)
    answers: dict[int, bytes] = {}
    for name, serve in (
        ("msgpack", lambda s: serve_msgpack(s, bucket)),
        ("echo", lambda s: serve_echo(s, answers)),
    ):
        listener = listen(directory / f"{name}.sock")
        listeners.append(listener)
        threading.Thread(target=accept_loop, args=(listener, serve), daemon=True).start()
    try:
        print(
            json.dumps(
                {
                    "pyro": str(pyro_path),
                    "msgpack": str(directory / "msgpack.sock"),
                    "echo": str(directory / "echo.sock"),
                }
            )
        )
        sys.stdout.flush()
        sys.stdin.read()  # returns at end of file: the parent is done (or gone)
    except KeyboardInterrupt:
        pass
    finally:
        for listener in listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        daemon.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
