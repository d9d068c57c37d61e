"""Attacks after the handshake, by a peer that holds the credential, against a real
kernel and plugin: only kos requests are served; anything else closes that connection
before rpyc handles it, and nothing grows (docs/design-notes.md, "Wire and security").

Each test prints the figures it measured (``pytest -s``).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable

import pytest
from rpyc.core import brine, consts

from attack_helpers import (
    FRAME,
    authenticated,
    exception_frame,
    frame,
    peak_kib,
    read_frames,
    reset_peak,
    rss_kib,
    threads_of,
    timed_answer,
)
from kos_core import _rpc
from kos_core._net import wire
from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import connection_info

#: how much an attacked process may grow over a whole attack
GROWTH_KIB = 10 * 1024


@pytest.fixture
def kos_env(shared_kos_env: KosEnv) -> KosEnv:
    """The tests of this module share one kernel (none of them stops it)."""
    return shared_kos_env


@pytest.fixture
def bb_kernel(shared_bb_kernel: KernelProcess) -> KernelProcess:
    """The module's shared kernel."""
    return shared_bb_kernel


def targets(kos_env: KosEnv, kernel: KernelProcess) -> dict[str, tuple[int, wire.Address, str]]:
    """``name: (pid, address, credential)`` of the kernel and of the bitbucket plugin."""
    info = connection_info(kos_env)
    plugin_pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kernel.connect() as kos:
        _, _, sbh = kos.kernel.Lookup("bitbucket")
    address, token = wire.parse_sbh(sbh)
    return {
        "kernel": (kernel.pid, wire.Address.parse(info["address"]), info["secret"]),
        "bitbucket": (plugin_pid, address, token),
    }


def flood(address: wire.Address, token: str, frames: int, make: Callable[[int], bytes]) -> int:
    """Send ``frames`` frames (``make(i)`` is the i-th) on authenticated connections,
    opening a new one whenever the server has hung up; return the connections used.
    """
    counter = itertools.count()
    connections = itertools.count(1)
    errors: list[BaseException] = []

    def worker() -> None:
        sock: socket.socket | None = None
        try:
            while (i := next(counter)) < frames:
                while True:
                    if sock is None:
                        sock = authenticated(address, token)
                        next(connections)
                        sock.setblocking(False)
                    if _hung_up(sock):
                        sock.close()
                        sock = None
                        continue
                    try:
                        sock.setblocking(True)
                        sock.sendall(make(i))
                        sock.setblocking(False)
                        break
                    except OSError:
                        sock.close()
                        sock = None
        except BaseException as exc:
            errors.append(exc)
        finally:
            if sock is not None:
                sock.close()

    threads = [threading.Thread(target=worker, name=f"flood-{n}") for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return next(connections) - 1


def _hung_up(sock: socket.socket) -> bool:
    """Whether the server has hung up (it never answers these frames: any bytes end it)."""
    try:
        sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", ["kernel", "bitbucket"])
def test_unsolicited_exception_frames_close_the_connection_and_grow_nothing(
    kos_env: KosEnv, bb_kernel: KernelProcess, target: str
) -> None:
    """50,000 rpyc exception messages, each naming a new exception class: the process
    grows by less than 10 MiB over the whole attack.
    """
    pid, address, token = targets(kos_env, bb_kernel)[target]
    before = rss_kib(pid)
    reset_peak(pid)
    start = time.monotonic()
    used = flood(address, token, 50_000, lambda i: exception_frame(i, f"attack.m{i}", f"E{i}"))
    took = time.monotonic() - start
    grown = max(peak_kib(pid), rss_kib(pid)) - before
    answer = timed_answer()
    print(
        f"\n{target}: 50,000 exception frames on {used} connections in {took:.1f} s;"
        f" RSS {before} KiB, grew at most {grown} KiB; threads now {threads_of(pid)};"
        f" a client answered in {answer * 1000:.0f} ms"
    )
    assert grown <= GROWTH_KIB, f"{target} grew {grown} KiB"
    # the server hangs up at the first frame (what was sent behind it is dropped)
    assert used >= 100, f"{target} kept serving connections that sent exception frames"
    assert answer <= 1.0


def netref_call(method: str, *plain: object) -> bytes:
    """A call whose last argument is boxed by reference (a client-side bytearray)."""
    remote_ref = (consts.LABEL_REMOTE_REF, ("builtins.bytearray", 140000000000, 0))
    values = tuple((consts.LABEL_VALUE, v) for v in plain)
    args = (consts.LABEL_TUPLE, (*values, remote_ref))
    boxed = (
        consts.LABEL_TUPLE,
        ((consts.LABEL_VALUE, 0), (consts.LABEL_VALUE, method), args),
    )
    return frame(consts.MSG_REQUEST, 1, (_rpc.HANDLE_KOS_CALL, boxed))


@pytest.mark.parametrize(
    ("target", "method", "plain"),
    [("kernel", "Lookup", ()), ("bitbucket", "Set", ("key",))],
)
def test_a_netref_argument_closes_the_connection_without_a_request_back(
    kos_env: KosEnv, bb_kernel: KernelProcess, target: str, method: str, plain: tuple[str, ...]
) -> None:
    _, address, token = targets(kos_env, bb_kernel)[target]
    sock = authenticated(address, token)
    try:
        sock.sendall(netref_call(method, *plain))
        kinds, closed = read_frames(sock, 3.0)
    finally:
        sock.close()
    print(f"\n{target}: a netref argument: frames back {kinds}, closed {closed}")
    assert consts.MSG_REQUEST not in kinds, "the server called back into the client"
    assert kinds == [] and closed
    assert timed_answer() <= 1.0


def test_deep_nesting_closes_only_that_connection(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    """A request nested 100,000 tuples deep ends its own connection; another one held
    open meanwhile goes on being served.
    """
    info = connection_info(kos_env)
    with bb_kernel.connect() as kos:
        assert "bitbucket" in kos.list()
        address = wire.Address.parse(info["address"])
        sock = authenticated(address, info["secret"])
        try:
            payload = brine.I1.pack(consts.MSG_REQUEST) + brine.TAG_TUP1 * 100_000 + brine.TAG_NONE
            sock.sendall(FRAME.pack(len(payload), 0) + payload + b"\n")
            kinds, closed = read_frames(sock, 3.0)
        finally:
            sock.close()
        assert closed and consts.MSG_EXCEPTION not in kinds
        assert "bitbucket" in kos.list()
    assert bb_kernel.process.poll() is None
