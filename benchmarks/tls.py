"""What TLS costs a kos call: Get and Set over TCP with TLS 1.3, beside the same
server on a Unix socket and plain rpyc over unencrypted TCP, in the same run.

Usage::

    python benchmarks/tls.py [--quick]

One helper process (``tls_server.py``) serves one BitBucket through kos's own server
on a Unix socket and on loopback TCP with TLS, and through plain rpyc on loopback TCP
(compression off, ``TCP_NODELAY``: how kos's TCP calls went before TLS). Each
series is timed in alternating batches, so drift in machine load spreads over all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
from typing import Any

import rpyc

from common import Call, Stats, helper_process, time_calls
from kos_core import _rpc
from kos_core._net import tls
from kos_plugins_bitbucket.api import BitBucket

SIZES = (32, 100 * 1024)


def series(
    calls: dict[str, tuple[Call, tuple[Any, ...]]], total: int, batch: int
) -> dict[str, Stats]:
    """Time every call ``total`` times, in turns of ``batch`` (the order rotating)."""
    for fn, args in calls.values():
        for _ in range(20):
            fn(*args)
    samples: dict[str, list[int]] = {name: [] for name in calls}
    names = list(calls)
    done = turn = 0
    while done < total:
        n = min(batch, total - done)
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            fn, args = calls[name]
            time_calls(fn, args, n, samples[name])
        done += n
        turn += 1
    return {name: Stats.of(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    args = parser.parse_args(argv)
    small, large = (2000, 300) if args.quick else (20000, 3000)
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="kosb-tls-"))
        info = stack.enter_context(
            helper_process([sys.executable, os.path.join(here, "tls_server.py"), directory], "tls")
        )
        tls.trust(info["ca"])
        over_unix = _rpc.object_of_sbh(info["unix"], BitBucket)
        over_tls = _rpc.object_of_sbh(info["tls"], BitBucket)
        plain = rpyc.connect("127.0.0.1", info["rpyc_tcp"])
        stack.callback(plain.close)
        plain._channel.compress = False
        plain._channel.stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        plain_set, plain_get = plain.root.Set, plain.root.Get
        for size in SIZES:
            data = os.urandom(size)
            name = f"k{size}"
            for proxy in (over_unix, over_tls):
                proxy.Set(name, data)
            plain_set(name, data)
            total = small if size < 4096 else large
            for op in ("Get", "Set"):
                if op == "Get":
                    calls = {
                        "unix": (over_unix.Get, (name,)),
                        "tls": (over_tls.Get, (name,)),
                        "rpyc": (plain_get, (name,)),
                    }
                else:
                    calls = {
                        "unix": (over_unix.Set, (name, data)),
                        "tls": (over_tls.Set, (name, data)),
                        "rpyc": (plain_set, (name, data)),
                    }
                stats = series(calls, total, 100 if size < 4096 else 20)
                label = f"{op} {size // 1024} KiB" if size >= 1024 else f"{op} {size} B"
                rows.append((label, stats))
    print(
        f"{'case':<12} {'kos unix µs':>12} {'kos TCP+TLS µs':>15} {'rpyc TCP µs':>12}"
        f" {'TLS÷unix':>9} {'TLS÷rpyc TCP':>13}"
    )
    for label, stats in rows:
        unix, secured, plain_tcp = stats["unix"], stats["tls"], stats["rpyc"]
        print(
            f"{label:<12} {unix.median_us:>12.1f} {secured.median_us:>15.1f}"
            f" {plain_tcp.median_us:>12.1f} {secured.median_us / unix.median_us:>9.2f}"
            f" {secured.median_us / plain_tcp.median_us:>13.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
