"""Tools of the attack tests: slow connections, raw rpyc frames, figures of a process."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from rpyc.core import brine, consts

import kos_core
from kos_core._net import wire

#: rpyc's frame header: payload length (4 bytes), compressed flag (1 byte).
FRAME = struct.Struct("!LB")


# ------------------------------------------------------------------ process figures


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise KeyError(key)


def threads_of(pid: int) -> int:
    """How many threads ``pid`` runs now."""
    return _status(pid, "Threads")


def rss_kib(pid: int) -> int:
    """What ``pid`` has resident now, in KiB."""
    return _status(pid, "VmRSS")


def peak_kib(pid: int) -> int:
    """The most ``pid`` had resident since :func:`reset_peak`, in KiB."""
    return _status(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    """Make ``VmHWM`` start again from the resident size now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed_answer() -> float:
    """Seconds a new client takes to connect to the kernel of the environment and list
    its names (``inf`` if it fails).
    """
    start = time.monotonic()
    try:
        with kos_core.connect() as kos:
            assert isinstance(kos.list(), list)
    except kos_core.KosError:
        return float("inf")
    return time.monotonic() - start


# ---------------------------------------------------------------------- slow peers


class Loris:
    """``count`` connections to ``address`` that each send one byte a second of an
    opening line that never ends. Once a second (a tick) each is given its byte; one
    the server has closed is opened again instead.
    """

    def __init__(self, address: wire.Address, count: int) -> None:
        self.address = address
        self.slots: list[socket.socket | None] = [None] * count
        self.opened = 0
        self.refused = 0  # connects that failed (backlog full, say)
        self.cut = 0  # connections the server closed
        self.ticks = 0
        self._ticked = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loris", daemon=True)

    def __enter__(self) -> Loris:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.slots:
            if sock is not None:
                sock.close()

    def wait_ticks(self, n: int, timeout: float = 30.0) -> None:
        """Wait until ``n`` more ticks have passed."""
        with self._ticked:
            target = self.ticks + n
            if not self._ticked.wait_for(lambda: self.ticks >= target, timeout):
                raise TimeoutError(f"the slow connections did not tick {n} times")

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, held in enumerate(self.slots):
                if held is None:
                    self.slots[i] = self._open()
                elif not self._nudge(held):
                    held.close()
                    self.cut += 1
                    self.slots[i] = self._open()
            with self._ticked:
                self.ticks += 1
                self._ticked.notify_all()
            self._stop.wait(1.0)

    def _open(self) -> socket.socket | None:
        family = socket.AF_UNIX if self.address.path else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        target: Any = self.address.path or (self.address.host, self.address.port)
        try:
            sock.connect(target)
        except BlockingIOError:
            if family == socket.AF_UNIX:  # EAGAIN: the listen backlog is full
                sock.close()
                self.refused += 1
                return None
        except OSError:
            sock.close()
            self.refused += 1
            return None
        self.opened += 1
        return sock

    @staticmethod
    def _nudge(sock: socket.socket) -> bool:
        """Send the next byte; false if the server has hung up."""
        try:
            sock.recv(256)
            return False  # an answer ("NO ...") or the end: refused
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            sock.send(b"K")
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True


# ----------------------------------------------------------------------- raw frames


def frame(msg: int, seq: int, body: Any) -> bytes:
    """One rpyc frame as the peer would send it."""
    payload = brine.I1.pack(msg) + brine.dump((seq, body))
    return FRAME.pack(len(payload), 0) + payload + b"\n"


def exception_frame(seq: int, module: str, name: str) -> bytes:
    """An rpyc exception message naming the exception class ``module.name``."""
    return frame(consts.MSG_EXCEPTION, seq, ((module, name), (), (), "<traceback>"))


def authenticated(address: wire.Address, token: str, timeout: float = 5.0) -> socket.socket:
    """A raw socket past the kos handshake with ``token``."""
    sock = address.connect(timeout)
    try:
        wire.client_handshake(sock, token)
    except BaseException:
        sock.close()
        raise
    return sock


def read_frames(sock: socket.socket, timeout: float) -> tuple[list[int], bool]:
    """The message types of the frames the peer sends until it hangs up, and whether
    it hung up within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    while not closed:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            chunk = b""
        closed = not chunk
        data += chunk
    kinds = []
    while len(data) >= FRAME.size + 1:
        length, _ = FRAME.unpack_from(data)
        kinds.append(data[FRAME.size])
        data = data[FRAME.size + length + 1 :]
    return kinds, closed
