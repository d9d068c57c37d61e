"""Hardening: hostile bytes on every kind of kos socket, no orphans when a kernel is
killed, concurrent load on one bucket, oversized values, restart backoff, log rotation,
and a wedged plugin (docs/operations.md: supervision, health, logs, no orphans, limits).

Run with ``pytest -s`` to see the figures each test prints.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import random
import re
import signal
import socket
import string
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rpyc.core import brine, consts

import kos_core
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import ServiceUnavailable
from kos_core.testing import (
    KernelProcess,
    KosEnv,
    StartKernel,
    descendants_of,
    process_ended,
    sbh_pid,
    wait_for,
)
from kos_helpers import Cli, connection_info, dedent, kos_environ, run
from kos_plugins_bitbucket import BitBucket, BucketFull
from kos_plugins_http import Factory

#: The plugins the kernels of this module load (the suite loads only bitbucket by default).
WITH_HTTP = "bitbucket,http"
#: The ``[http]`` section: requesters may fetch from the loopback web server below.
HTTP_SECTION = "[http]\nallow-hosts: 127.0.0.1\n"
#: What the loopback web server answers to every GET.
PAGE = b"kos hardening page\n" * 4

# --------------------------------------------------------------------------- fixtures


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    """A loopback HTTP server (a thread of this process) that answers :data:`PAGE`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_kernel(
    kos_env: KosEnv, start_kernel: StartKernel, monkeypatch: pytest.MonkeyPatch
) -> KernelProcess:
    """A kernel running bitbucket and http (loopback allowed), both serving."""
    monkeypatch.setenv("KOS_LOAD_PLUGINS", WITH_HTTP)
    kos_env.write_setup(HTTP_SECTION)
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    kernel.wait_plugin("http", services=["http"])
    return kernel


# ---------------------------------------------------------------------- helpers


def fetch(requester: Any, url: str) -> bytes:
    """The body of ``url`` fetched through a requester child."""
    body = requester.Get(url)
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def assert_page(requester: Any, url: str) -> None:
    assert fetch(requester, url) == PAGE


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (the most ever resident) of ``pid``, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def still_running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that have not ended. An exited orphan stays a zombie of PID 1
    until init reaps it, and this machine's init may not reap orphans, so
    ``process_ended`` counts a zombie as ended.
    """
    return {pid for pid in pids if not process_ended(pid)}


# ------------------------------------------------------------------ hostile input

#: rpyc's frame header: payload length (4 bytes), compressed flag (1 byte).
FRAME = struct.Struct("!LB")
TOKEN_CHARS = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True)
class Hostile:
    """One hostile connection: ``opening`` is sent at once; ``after_ok`` (if set) only
    once the server has accepted the handshake (so it reaches the rpyc layer).
    """

    kind: str
    opening: bytes
    after_ok: bytes | None = None


def _random_token(rng: random.Random) -> str:
    return "".join(rng.choice(TOKEN_CHARS) for _ in range(rng.randint(1, 64)))


def _near_miss(rng: random.Random, token: str) -> str:
    """``token`` with one character changed: the right length, never the right token."""
    i = rng.randrange(len(token))
    other = rng.choice([c for c in TOKEN_CHARS if c != token[i]])
    return token[:i] + other + token[i + 1 :]


def _rpyc_request(rng: random.Random) -> bytes:
    """A well-framed rpyc request with a random handler and random (brine-able) args."""
    args: tuple[Any, ...] = tuple(
        rng.choice([rng.randint(-(2**40), 2**40), _random_token(rng), rng.randbytes(8), None])
        for _ in range(rng.randint(0, 4))
    )
    handler = rng.choice([rng.randint(0, 80), _rpc.HANDLE_KOS_CALL, _rpc.HANDLE_KOS_RELEASE])
    if handler == _rpc.HANDLE_KOS_CALL:
        # a call of a method no interface declares, on a random handle
        args = (rng.randint(0, 3), "No" + _random_token(rng), args)
    # boxed as rpyc boxes arguments (so it reaches kos's dispatch), or left raw
    boxed = (consts.LABEL_VALUE, args) if rng.random() < 0.5 else args
    payload: bytes = brine.I1.pack(consts.MSG_REQUEST) + brine.dump(
        (rng.randint(0, 2**31), (handler, boxed))
    )
    return FRAME.pack(len(payload), 0) + payload + b"\n"


def hostile_inputs(rng: random.Random, token: str, right_token_ok: bool) -> Iterator[Hostile]:
    """An endless mix of hostile connections for a server whose credential is ``token``.

    With ``right_token_ok`` false (a one-shot factory child) the right token is never
    sent: every input is a wrong credential or garbage.
    """

    def credential() -> str:
        return token if right_token_ok else _near_miss(rng, token)

    def pure_random() -> Hostile:
        return Hostile("random bytes", rng.randbytes(rng.randint(1, 700)))

    def random_line() -> Hostile:
        return Hostile("random line", rng.randbytes(rng.randint(0, 200)) + b"\n")

    def wrong_token() -> Hostile:
        return Hostile("KOS/1 random token", f"KOS/1 {_random_token(rng)}\n".encode())

    def near_token() -> Hostile:
        return Hostile("KOS/1 near-miss token", f"KOS/1 {_near_miss(rng, token)}\n".encode())

    def wrong_version() -> Hostile:
        version = rng.choice([0, 2, 99, rng.randint(3, 10**6)])
        return Hostile("wrong version", f"KOS/{version} {credential()}\n".encode())

    def overlong() -> Hostile:
        line = b"KOS/1 " + b"A" * rng.randint(251, 100_000)
        return Hostile("overlong line", line + rng.choice([b"", b"\n"]))

    def truncated_opening() -> Hostile:
        line = f"KOS/1 {credential()}\n".encode()
        return Hostile("truncated opening", line[: rng.randrange(len(line) - 1)])

    def immediate_close() -> Hostile:
        return Hostile("immediate close", b"")

    makers: list[Callable[[], Hostile]] = [
        pure_random,
        random_line,
        wrong_token,
        near_token,
        wrong_version,
        overlong,
        truncated_opening,
        immediate_close,
    ]
    if right_token_ok:
        opening = f"KOS/1 {token}\n".encode()

        def pipelined() -> Hostile:
            # bytes behind the opening line, before the server answered it: refused
            return Hostile("opening + random bytes", opening + rng.randbytes(rng.randint(1, 300)))

        def random_after_ok() -> Hostile:
            return Hostile("handshake, then random", opening, rng.randbytes(rng.randint(1, 700)))

        def truncated_frame() -> Hostile:
            announced = rng.randint(2, 1 << 20)
            rest = rng.randbytes(rng.randrange(min(announced, 4096)))
            return Hostile("handshake, truncated frame", opening, FRAME.pack(announced, 0) + rest)

        def huge_frame() -> Hostile:
            head = FRAME.pack(0xFFFFFFFF, 0) + rng.randbytes(rng.randint(0, 64))
            return Hostile("handshake, 4 GB frame header", opening, head)

        def compressed_frame() -> Hostile:
            return Hostile("handshake, compressed frame", opening, FRAME.pack(16, 1) + bytes(17))

        def bad_request() -> Hostile:
            return Hostile("handshake, random rpyc request", opening, _rpyc_request(rng))

        makers += [
            pipelined,
            random_after_ok,
            truncated_frame,
            huge_frame,
            compressed_frame,
            bad_request,
        ]
    while True:
        yield rng.choice(makers)()


def _drain(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """What the peer sends until it hangs up: ``(data, hung_up)``; ``hung_up`` is false
    if it was still connected at ``deadline``.
    """
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk


def throw(address: wire.Address, item: Hostile, timeout: float) -> str:
    """Send one hostile input, hang up our side, wait for the server to hang up;
    return what happened.
    """
    deadline = time.monotonic() + timeout
    sock = address.connect(timeout)
    try:
        try:
            sock.sendall(item.opening)
            if item.after_ok is not None:
                reply, _ = _drain_line(sock, deadline)
                if reply != b"OK KOS/1\n":
                    return f"handshake refused: {reply!r}"
                sock.sendall(item.after_ok)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return "reset"
        data, hung_up = _drain(sock, deadline)
    finally:
        sock.close()
    if not hung_up:
        return "server still connected"
    if data.startswith(b"NO "):
        return "refused"
    return "frames sent, then closed" if data else "closed"


def _drain_line(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(1)
        if not chunk:
            return data, True
        data += chunk
    return data, False


@dataclass
class FuzzReport:
    """What one socket went through."""

    target: str
    tried: int = 0
    batches: int = 0
    failures: int = 0  # checks after a batch that found the target not serving
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def __str__(self) -> str:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.target}: {self.tried} hostile inputs ({len(self.kinds)} kinds) in"
            f" {self.batches} batches, {self.seconds:.1f} s; failures {self.failures};"
            f" outcomes {outcomes}"
        )


def fuzz(
    target: str,
    address: wire.Address,
    inputs: Iterator[Hostile],
    still_serves: Callable[[], None],
    *,
    minimum: int = 2000,
    batch: int = 250,
    budget: float = 10.0,
) -> FuzzReport:
    """Throw at least ``minimum`` inputs (stopping at ``budget`` seconds anyway), in
    batches; after each batch ``still_serves()`` must pass.
    """
    report = FuzzReport(target)
    start = time.monotonic()
    while report.tried < minimum and time.monotonic() - start < budget:
        for _ in range(batch):
            item = next(inputs)
            report.kinds[item.kind] += 1
            report.outcomes[throw(address, item, timeout=2.0)] += 1
            report.tried += 1
        report.batches += 1
        try:
            still_serves()
        except Exception as exc:
            report.failures += 1
            print(f"{target}: not serving after batch {report.batches}: {exc!r}")
    report.seconds = time.monotonic() - start
    print(f"\n{report}")
    return report


def assert_fuzz_passed(report: FuzzReport, kernel: KernelProcess, minimum: int = 2000) -> None:
    assert report.failures == 0, str(report)
    # refused quietly: no traceback from the kernel, its plugins or their children
    assert "Traceback" not in kernel.log(), kernel.log()[-5000:]
    assert report.tried >= minimum, str(report)
    # a server never keeps a hostile peer that has hung up
    assert report.outcomes["server still connected"] == 0, str(report)
    assert not any(o.startswith("handshake refused") for o in report.outcomes), str(report)


def test_hostile_input_on_the_kernel_socket(kos_env: KosEnv, http_kernel: KernelProcess) -> None:
    info = connection_info(kos_env)
    address = wire.Address.parse(info["address"])

    def still_serves() -> None:
        assert http_kernel.process.poll() is None, "the kernel exited"
        with kos_core.connect() as kos:
            assert kos.kernel.Lookup("bitbucket")[0] == "service"
            assert {"bitbucket", "http"} <= set(kos.list())

    inputs = hostile_inputs(random.Random(1998), info["secret"], right_token_ok=True)
    assert_fuzz_passed(fuzz("kernel", address, inputs, still_serves), http_kernel)


def test_hostile_input_on_a_plugin_socket(http_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        _, _, sbh = kos.kernel.Lookup("bitbucket")
        address, token = wire.parse_sbh(sbh)
        bb = kos.lookup("bitbucket", BitBucket)  # a connection held open through the fuzzing
        probe = random.Random(7)

        def still_serves() -> None:
            value = probe.randbytes(probe.randint(0, 512))
            bb.Set("probe", value)
            assert bb.Get("probe") == value
            with kos_core.connect() as fresh:  # and a new client is served too
                assert fresh.lookup("bitbucket", BitBucket).Get("probe") == value

        inputs = hostile_inputs(random.Random(1999), token, right_token_ok=True)
        report = fuzz("plugin (bitbucket)", address, inputs, still_serves)
        assert bb.List() == ["probe"]  # nothing the fuzzing sent was stored
    assert_fuzz_passed(report, http_kernel)


def test_hostile_input_on_a_factory_child_socket(http_kernel: KernelProcess, page_url: str) -> None:
    with kos_core.connect() as kos:
        requester = kos.lookup("http", Factory).GetHTTPRequester()
        sbh = _rpc.sbh_of(requester)
        assert sbh, "a requester is reached through its own SBH"
        address, token = wire.parse_sbh(sbh)
        # A child serves exactly one client: the right token is never sent here. The
        # first batch runs before its real client has connected, so garbage and wrong
        # credentials must not use up its one connection.
        inputs = hostile_inputs(random.Random(2000), token, right_token_ok=False)
        report = fuzz(
            "factory child (http requester)",
            address,
            inputs,
            lambda: assert_page(requester, page_url),
        )
        assert_page(requester, page_url)
        requester.Close()
    assert_fuzz_passed(report, http_kernel)


def test_announced_bytes_are_not_allocated_before_they_arrive(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    """A frame header is a promise, not a payment: a client that announces 60 MiB (under
    the 64 MiB limit) and sends 3 bytes must not make the server allocate 60 MiB.
    """
    info = connection_info(kos_env)
    address = wire.Address.parse(info["address"])
    before = memory_kib(bb_kernel.pid)["VmRSS"]
    held: list[socket.socket] = []
    try:
        for _ in range(4):
            sock = address.connect(5.0)
            held.append(sock)
            sock.sendall(f"KOS/1 {info['secret']}\n".encode())
            assert _drain_line(sock, time.monotonic() + 5.0)[0] == b"OK KOS/1\n"
            sock.sendall(FRAME.pack(60 * 1024 * 1024, 0) + b"abc")

        def grown() -> int:
            return memory_kib(bb_kernel.pid)["VmRSS"] - before

        # 4 x 60 MiB promised, 12 bytes sent: the kernel's memory must not follow the promise
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: grown() > 32 * 1024, 1.5, "the kernel's memory to grow")
        print(f"\nannounced 240 MiB, sent 12 bytes: the kernel's RSS grew {grown()} KiB")
        assert grown() <= 32 * 1024, f"the kernel allocated what was announced: {grown()} KiB"
        with kos_core.connect() as kos:
            assert kos.kernel.Lookup("bitbucket")[0] == "service"
    finally:
        for sock in held:
            sock.close()


# ------------------------------------------------------------------------ no orphans


def test_no_orphans_when_the_kernel_is_killed(http_kernel: KernelProcess, page_url: str) -> None:
    plugin_pids = [http_kernel.wait_plugin(name) for name in ("bitbucket", "http")]
    family: set[int] = set()
    kos = kos_core.connect()
    try:
        factory = kos.lookup("http", Factory)
        requesters = [factory.GetHTTPRequester() for _ in range(2)]
        for requester in requesters:
            assert_page(requester, page_url)  # live and connected
        handed = {sbh_pid(requester) for requester in requesters}
        # Under http: the fork server, the two requesters and the spare forked after them.
        http_pid = plugin_pids[1]
        wait_for(lambda: len(descendants_of(http_pid)) == 4, 10, "the spare after the requesters")
        for pid in plugin_pids:
            family |= {pid, *descendants_of(pid)}
        # bitbucket, http, the fork server, the two children and the spare at least
        assert len(family) >= 6 and handed <= family, (family, handed)
        assert http_kernel.pid not in family
        http_kernel.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        http_kernel.process.wait(5)
        wait_for(
            lambda: not still_running(family),
            max(0.0, killed + 2.0 - time.monotonic()),
            f"every process of {sorted(family)} to end",
        )
        took = time.monotonic() - killed
    finally:
        kos.close()
        # the plugins run in process groups of their own: the kernel fixture would not
        # sweep up what outlived the kernel, so a failure here must not leave it behind
        for pid in still_running(family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(
        f"\nno orphans: {len(family)} plugin, fork server and child processes"
        f" gone {took:.2f} s after SIGKILL of the kernel"
    )
    for requester in requesters:
        with pytest.raises(ServiceUnavailable):
            requester.Get(page_url)


def test_dropped_requester_ends_its_child(http_kernel: KernelProcess, page_url: str) -> None:
    """A client that drops a requester without ``Close()`` has disconnected: the child
    ends then, not whenever the client's cyclic garbage collector happens to run
    (so the collector is kept off while we wait).
    """
    with kos_core.connect() as kos:
        requester = kos.lookup("http", Factory).GetHTTPRequester()
        child = sbh_pid(requester)
        assert_page(requester, page_url)  # a body by reference, read and closed
        gc.disable()
        try:
            del requester
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not still_running({child}), 5.0, "the dropped child to end")
            left = still_running({child})
        finally:
            gc.enable()
            gc.collect()
        assert not left, f"requester child {child} still runs 5 s after its proxy was dropped"


# ------------------------------------------------------------------------------ load

LOAD_CAPACITY = 20000
LOAD_CLIENTS = 4
LOAD_SECONDS = 3.0

LOAD_CLIENT = '''\
"""One load client: mixed Set/Get/Delete on the bucket for a bounded time."""

import hashlib
import json
import random
import sys
import time

import kos_core
from kos_plugins_bitbucket import BitBucket, BucketFull, NotFound

me, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
own = {}  # name -> the value last Set under a name only this client uses
counts = {"Set": 0, "Get": 0, "Delete": 0, "BucketFull": 0, "NotFound": 0}
wrong = []
with kos_core.connect() as kos:
    bb = kos.lookup("bitbucket", BitBucket)
    deadline = time.monotonic() + seconds
    for _ in range(1_000_000):
        if time.monotonic() >= deadline:
            break
        shared = rng.random() < 0.3
        name = f"shared-{rng.randrange(6)}" if shared else f"{me}-{rng.randrange(10)}"
        op = rng.choice(("Set", "Set", "Get", "Delete"))
        counts[op] += 1
        if op == "Set":
            size = rng.choice((0, rng.randint(1, 64), rng.randint(65, 3000)))
            value = rng.randbytes(size)
            try:
                bb.Set(name, value)
            except BucketFull:
                counts["BucketFull"] += 1
            else:
                if not shared:
                    own[name] = value
        elif op == "Get":
            try:
                got = bb.Get(name)
            except NotFound:
                counts["NotFound"] += 1
                got = None
            if not shared and got != own.get(name):
                wrong.append(f"Get({name!r}) gave {None if got is None else len(got)} bytes")
        else:
            try:
                bb.Delete(name)
                deleted = True
            except NotFound:
                counts["NotFound"] += 1
                deleted = False
            if not shared and deleted != (name in own):
                wrong.append(f"Delete({name!r}) deleted={deleted}, expected {name in own}")
            if not shared:
                own.pop(name, None)
digests = {name: hashlib.sha256(value).hexdigest() for name, value in own.items()}
print(json.dumps({"counts": counts, "wrong": wrong, "own": digests}))
'''


def test_concurrent_clients_lose_and_double_count_nothing(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    kos_env.write_setup(f"[bitbucket]\nargs: --capacity {LOAD_CAPACITY}\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    script = tmp_path / "load_client.py"
    script.write_text(LOAD_CLIENT)
    environ = kos_environ(kos_env)

    def client(i: int) -> dict[str, Any]:
        command = [sys.executable, str(script), f"c{i}", str(LOAD_SECONDS), str(i)]
        result = run(command, env=environ, cwd=tmp_path, timeout=LOAD_SECONDS + 30)
        assert result.returncode == 0, str(result)
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        summaries = list(pool.map(client, range(LOAD_CLIENTS)))
    totals: Counter[str] = Counter()
    for summary in summaries:
        assert summary["wrong"] == [], summary["wrong"]
        totals.update(summary["counts"])
    assert totals["BucketFull"] > 0 and totals["Set"] > totals["BucketFull"], totals

    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket", BitBucket)
        names = bb.List()
        stored = sum(len(name) + len(bb.Get(name)) for name in names)  # names count
        assert stored <= LOAD_CAPACITY
        for i, summary in enumerate(summaries):  # each client's names hold what it last Set
            assert {n for n in names if n.startswith(f"c{i}-")} == set(summary["own"])
            for name, digest in summary["own"].items():
                assert hashlib.sha256(bb.Get(name)).hexdigest() == digest, name
        # the bucket's own count of used bytes is exactly what it holds
        if LOAD_CAPACITY - stored < len("fill"):  # too full for the name: free an entry
            bb.Delete(names[0])
            stored = sum(len(name) + len(bb.Get(name)) for name in bb.List())
        bb.Set("fill", bytes(LOAD_CAPACITY - stored - len("fill")))
        with pytest.raises(BucketFull):
            bb.Set("one-more", b"")
        assert "one-more" not in bb.List()
    print(
        f"\nload: {LOAD_CLIENTS} clients x {LOAD_SECONDS:g} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
        + f"; {len(names)} names holding {stored} of {LOAD_CAPACITY} bytes at the end"
    )


# ------------------------------------------------------------------------ oversized


def test_oversized_value_is_refused_without_being_held(bb_kernel: KernelProcess) -> None:
    bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("small", b"before")
        assert bb.Get("small") == b"before"
        pid = sbh_pid(bb)
        before = memory_kib(pid)
        huge = bytes(50 * 1024 * 1024)
        started = time.monotonic()
        with pytest.raises(BucketFull):
            bb.Set("huge", huge)
        took = time.monotonic() - started
        after = memory_kib(pid)
        del huge
        bb.Set("after", b"still works")
        assert bb.Get("after") == b"still works"
        assert sorted(bb.List()) == ["after", "small"]
    grew = {key: after[key] - before[key] for key in before}
    print(
        f"\noversized: 50 MB Set refused (BucketFull) after {took:.2f} s;"
        f" plugin RSS grew {grew['VmRSS']} KiB, its peak RSS {grew['VmHWM']} KiB"
    )
    # read and dropped in small pieces: never held, not even for a moment
    assert grew["VmRSS"] < 8 * 1024, grew
    assert grew["VmHWM"] < 8 * 1024, grew
    # the refusal comes as soon as the bytes are through the socket (milliseconds for
    # 50 MB on a Unix socket), not seconds later
    assert took < 3.0, f"a refused 50 MB Set took {took:.1f} s"


# -------------------------------------------------------------------------- backoff

FLAPPY = """\
import sys

from kos_core import pluginlib

kos, ns = pluginlib.register("flappy")
print("flappy registered; exiting with status 1", flush=True)
sys.exit(1)
"""


def status_of(cli: Cli, name: str) -> dict[str, Any]:
    """The ``kos status --json`` entry of plugin ``name``."""
    result = cli("status", "--json")
    assert result.returncode == 0, str(result)
    (entry,) = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == name]
    return dict(entry)


def test_restart_backoff_doubles_up_to_its_maximum_then_fatal(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    (kos_env.config_dir / "flappy.py").write_text(FLAPPY)
    kos_env.write_setup(
        dedent(
            """
            [flappy]
            file: flappy.py
            backoff: 0.2
            backoff-max: 0.8
            startsecs: 5
            startretries: 4
            """
        )
    )
    started = time.monotonic()
    kernel = start_kernel()
    wait_for(
        lambda: (row := kernel.plugin_row("flappy")) is not None and row[1] == "fatal",
        20,
        "flappy to be given up on",
    )
    took = time.monotonic() - started
    delays = re.findall(r"plugin flappy .*; restarting in ([0-9.]+) s", kernel.log())
    assert delays == ["0.2", "0.4", "0.8", "0.8"], kernel.log()
    assert kernel.log().count("flappy| flappy registered") == 5, kernel.log()
    assert took >= 0.2 + 0.4 + 0.8 + 0.8
    entry = status_of(cli, "flappy")
    assert (entry["state"], entry["last_exit"]) == ("fatal", "exit status 1"), entry
    print(f"\nbackoff: restarts after {', '.join(delays)} s, fatal after {took:.1f} s")

    result = cli("plugin", "start", "--no-wait", "flappy")
    assert result.returncode == 0, str(result)
    assert status_of(cli, "flappy")["state"] != "fatal"


# --------------------------------------------------------------------- log rotation

CHATTY = """\
for i in range(200):
    print(f"chatty line {i:04d} " + "x" * 80)
print("chatty done", flush=True)
"""


def test_plugin_log_is_rotated_by_size(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    (kos_env.config_dir / "chatty.py").write_text(CHATTY)
    kos_env.write_setup(
        "[chatty]\nfile: chatty.py\nrestart: never\nlog-max-bytes: 2000\nlog-backups: 2\n"
    )
    kernel = start_kernel()
    logs = kos_env.state_dir / kos_env.kernel / "logs"
    current = logs / "chatty.log"
    wait_for(
        lambda: current.exists() and "chatty done" in current.read_text(),
        15,
        "chatty's last line in its log",
    )
    wait_for(
        lambda: (row := kernel.plugin_row("chatty")) is not None and row[1] == "exited",
        10,
        "chatty to have exited",
    )
    files = sorted(p.name for p in logs.iterdir() if p.name.startswith("chatty.log"))
    assert files == ["chatty.log", "chatty.log.1", "chatty.log.2"], files
    for name in files:
        assert (logs / name).stat().st_size <= 2000 + 200, name
    result = cli("logs", "chatty")
    assert result.returncode == 0, str(result)
    lines = result.stdout.splitlines()
    assert lines[-1].endswith(" chatty done"), result.stdout
    assert lines[-2].endswith(" chatty line 0199 " + "x" * 80), result.stdout
    print(f"\nlog rotation: {', '.join(files)}; kos logs shows {len(lines)} lines")


# ------------------------------------------------------------------ wedged plugin


def test_call_to_a_stopped_plugin_fails_fast(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    kos_env.write_setup("[bitbucket]\nhealth-interval: 0.5\nhealth-timeout: 0.5\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("k", b"v")
        pid = sbh_pid(bb)  # the process this proxy talks to
        os.kill(pid, signal.SIGSTOP)
        try:
            # SIGSTOP takes effect asynchronously: wait until the process is stopped.
            wait_for(
                lambda: (
                    Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
                    in ("T", "t")
                ),
                5,
                "the plugin to be stopped",
            )
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                got = bb.Get("k")  # sent to a process that cannot answer
                pytest.fail(f"a stopped plugin answered {got!r}\n{kernel.log()}")
            took = time.monotonic() - started
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        print(f"\nwedged plugin: the caller got ServiceUnavailable after {took:.2f} s")
        assert took < 5.0

        def serves_again() -> bool:
            fresh = kos.lookup("bitbucket", BitBucket)
            fresh.Set("k", b"again")
            return fresh.Get("k") == b"again"

        wait_for(serves_again, 15, "a fresh lookup to work after the restart")
    row = kernel.plugin_row("bitbucket")
    assert row is not None and row[2] != pid, row
