"""kos calls against other Python RPC systems, in one run, interleaved.

Usage::

    python benchmarks/peers.py [--quick] [--clients 1,4,16] [--seconds S]

Every system serves the bitbucket plugin's ``BitBucket`` class on a Unix socket and is
asked for ``Get(name)`` of a 32 B, 100 KiB and 1 MiB value:

``kos``      a real kernel with the bitbucket plugin; ``kos_core.connect()``,
             ``bb = kos.lookup("bitbucket")``, ``bb.Get(name)``
``pyro5``    a Pyro5 daemon (thread pool), a ``Proxy`` with the msgpack serializer
``rpyc``     plain rpyc tuned as kos tunes itself (``plain_rpyc_server.py``: no frame
             compression, the method reference held)
``msgpack``  a minimal hand-written msgpack-over-socket RPC (``peers_server.py``)
``echo``     no RPC: a Python client sends a 32-byte message and the Python server
             answers with the value's size in bytes (the floor; there is no C here)

Latency: the systems take turns in batches (the order rotates), so drift in machine
load falls on all alike; medians, p99 and ratios (kos ÷ peer) are printed, and the
spread of the batch medians (90th ÷ 10th percentile). Throughput: 1, 4 and 16 client
processes (each its own connection) call ``Get`` of 32 B as fast as they can for a few
seconds; the systems take turns, rounds repeat, the median round counts.

Pyro5 and msgpack are needed only here (the ``benchmarks`` nox session installs them).
Everything started is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import Stats, helper_process, private_kernel, stop_process

HERE = Path(__file__).resolve().parent
SIZES = (32, 100 * 1024, 1024 * 1024)
SYSTEMS = ("kos", "pyro5", "rpyc", "msgpack", "echo")
CALLERS = ("kos", "pyro5", "rpyc", "msgpack")  # the throughput part
SETUP = "[bitbucket]\nargs: --capacity 10000000\n"
Get = Callable[[], Any]


def label(size: int) -> str:
    return (
        f"{size // 1024 // 1024} MiB"
        if size >= 1 << 20
        else (f"{size // 1024} KiB" if size >= 1024 else f"{size} B")
    )


# ------------------------------------------------------------------------------ clients


@contextlib.contextmanager
def client(system: str, addresses: dict[str, str]) -> Iterator[Callable[[int, str], Get]]:
    """A connection to ``system``; yields ``getter(size, name)``, which stores a value of
    ``size`` random bytes under ``name`` and returns a function that gets it.
    """
    with contextlib.ExitStack() as stack:
        if system == "kos":
            import kos_core

            bb = stack.enter_context(kos_core.connect()).lookup("bitbucket")
            store, get = bb.Set, bb.Get
        elif system == "rpyc":
            from rpyc.utils.factory import unix_connect

            conn = unix_connect(addresses["rpyc"])
            stack.callback(conn.close)
            conn._channel.compress = False
            store, get = conn.root.Set, conn.root.Get
        elif system == "pyro5":
            import Pyro5.api

            proxy = Pyro5.api.Proxy(f"PYRO:bucket@./u:{addresses['pyro']}")
            proxy._pyroSerializer = "msgpack"
            proxy._pyroBind()
            stack.callback(proxy._pyroRelease)
            store, get = proxy.Set, proxy.Get
        elif system == "msgpack":
            call = stack.enter_context(msgpack_client(addresses["msgpack"]))

            def store(name: str, data: bytes) -> None:
                call("Set", name, data)

            def get(name: str) -> Any:
                return call("Get", name)
        elif system == "echo":
            yield stack.enter_context(echo_client(addresses["echo"]))
            return
        else:
            raise ValueError(system)

        def getter(size: int, name: str) -> Get:
            store(name, os.urandom(size))
            return lambda: get(name)

        yield getter


@contextlib.contextmanager
def msgpack_client(path: str) -> Iterator[Callable[..., Any]]:
    import socket

    import msgpack

    from peers_server import recv_message, send_message

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)

    def call(method: str, *args: Any) -> Any:
        send_message(sock, msgpack.packb([method, args]))
        message = recv_message(sock)
        if message is None:
            raise EOFError("the msgpack server hung up")
        ok, value = msgpack.unpackb(message)
        if not ok:
            raise RuntimeError(value)
        return value

    with sock:
        yield call


@contextlib.contextmanager
def echo_client(path: str) -> Iterator[Callable[[int, str], Get]]:
    import socket

    from peers_server import LENGTH, recv_message, send_message

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)

    def getter(size: int, name: str) -> Get:
        request = LENGTH.pack(size) + bytes(28)

        def get() -> Any:
            send_message(sock, request)
            return recv_message(sock)

        return get

    with sock:
        yield getter


# ------------------------------------------------------------------------------ latency


def latency(
    getters: dict[str, Get], size: int, calls: int, batch: int
) -> dict[str, tuple[Stats, float]]:
    """Per system: the stats of ``calls`` timed calls and the spread of batch medians."""
    names = list(getters)
    for name in names:
        for _ in range(max(20, batch)):
            getters[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    medians: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    turn = 0
    while len(samples[names[0]]) < calls:
        order = names[turn % len(names) :] + names[: turn % len(names)]
        for name in order:
            get, out = getters[name], []
            for _ in range(batch):
                start = clock()
                get()
                out.append(clock() - start)
            samples[name] += out
            medians[name].append(statistics.median(out))
        turn += 1
    result = {}
    for name in names:
        deciles = statistics.quantiles(medians[name], n=10, method="inclusive")
        result[name] = (Stats.of(samples[name]), deciles[-1] / deciles[0])
    return result


# --------------------------------------------------------------------------- throughput


def worker(system: str, addresses: dict[str, str], seconds: float) -> None:
    """One throughput client: ready, wait for go, call for ``seconds``, print the count."""
    with client(system, addresses) as getter:
        get = getter(32, f"w{os.getpid()}")
        get()
        print("ready", flush=True)
        sys.stdin.readline()
        count = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(10):
                get()
            count += 10
        print(count, flush=True)


def throughput(system: str, addresses: dict[str, str], clients: int, seconds: float) -> float:
    """Calls per second of ``clients`` processes together."""
    command = [sys.executable, __file__, "--worker", system, repr(addresses), str(seconds)]
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {system} client did not start")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        total = 0
        for process in processes:
            assert process.stdout is not None
            total += int(process.stdout.readline())
        return total / seconds
    finally:
        for process in processes:
            stop_process(process)


# -------------------------------------------------------------------------------- report


def report_latency(size: int, results: dict[str, tuple[Stats, float]]) -> None:
    kos = results["kos"][0].median_us
    print(f"\nGet of {label(size)}")
    print(f"{'system':<9} {'median µs':>10} {'p99 µs':>9} {'spread':>7} {'kos ÷ it':>9}")
    for name, (stats, spread) in results.items():
        ratio = kos / stats.median_us
        print(
            f"{name:<9} {stats.median_us:>10.1f} {stats.p99_us:>9.1f} {spread:>6.2f}x {ratio:>9.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, one round")
    parser.add_argument("--clients", default="1,4,16", help="client processes (throughput)")
    parser.add_argument("--seconds", type=float, default=None, help="per throughput sample")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        import ast

        system, addresses, seconds = options.worker
        worker(system, ast.literal_eval(addresses), float(seconds))
        return 0
    small_calls, large_calls, rounds = (600, 200, 1) if options.quick else (3000, 600, 3)
    seconds = options.seconds or (1.0 if options.quick else 2.0)
    with contextlib.ExitStack() as stack:
        directory = Path(tempfile.mkdtemp(prefix="kosb-peers-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        rpyc_info = stack.enter_context(
            helper_process(
                [sys.executable, str(HERE / "plain_rpyc_server.py"), str(directory)],
                "the plain rpyc server",
            )
        )
        addresses = stack.enter_context(
            helper_process(
                [sys.executable, str(HERE / "peers_server.py"), str(directory)], "the peers server"
            )
        )
        addresses["rpyc"] = rpyc_info["tuned"]
        print("starting a kernel ...", file=sys.stderr)
        stack.enter_context(private_kernel("p", SETUP, "bitbucket", ["bitbucket"]))
        clients = {name: stack.enter_context(client(name, addresses)) for name in SYSTEMS}
        print(f"Unix sockets, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        for size in SIZES:
            print(f"measuring Get of {label(size)} ...", file=sys.stderr)
            getters = {name: make(size, f"v{size}") for name, make in clients.items()}
            calls = small_calls if size <= 1024 else large_calls
            report_latency(size, latency(getters, size, calls, 20 if size <= 1024 else 10))
        if options.no_throughput:
            return 0
        print("\nThroughput, Get of 32 B (calls/s, median of rounds)")
        counts = [int(n) for n in options.clients.split(",")]
        print(
            f"{'clients':<8}" + "".join(f"{name:>10}" for name in CALLERS) + f"{'kos ÷ pyro5':>13}"
        )
        for n in counts:
            rates: dict[str, list[float]] = {name: [] for name in CALLERS}
            for turn in range(rounds):
                print(f"throughput, {n} clients, round {turn + 1} ...", file=sys.stderr)
                order = CALLERS[turn % len(CALLERS) :] + CALLERS[: turn % len(CALLERS)]
                for name in order:
                    rates[name].append(throughput(name, addresses, n, seconds))
            medians = {name: statistics.median(r) for name, r in rates.items()}
            print(
                f"{n:<8}"
                + "".join(f"{medians[name]:>10.0f}" for name in CALLERS)
                + f"{medians['kos'] / medians['pyro5']:>13.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
