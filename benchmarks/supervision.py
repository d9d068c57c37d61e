"""Supervision figures: how fast a killed plugin is unbound and served again, what is
left behind when a kernel is killed or many factory children come and go, and how
the three kinds of kos sockets take hostile bytes.

A script, not a test::

    python benchmarks/supervision.py                 # about a minute
    python benchmarks/supervision.py --json out.json
    python benchmarks/supervision.py --runs 5 --children 200 --hostile 500   # quicker

Prints one table on stdout (progress on stderr); exit status 1 if a figure that must
be 0 is not. Every kernel runs in a private temporary environment and is stopped with
everything it started, also on Ctrl-C, SIGTERM or an error; processes orphaned on
purpose (part b) are killed if any outlive the measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import signal
import socket
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import file_server, private_kernel
from kos_core import _rpc
from kos_core._net import wire
from kos_core.errors import KosError
from kos_core.testing import KernelProcess, children_of, descendants_of, process_ended, wait_for
from kos_plugins_bitbucket import BitBucket
from kos_plugins_http import Factory

BOTH = {"KOS_LOAD_PLUGINS": "bitbucket,http"}
ONLY_BB = {"KOS_LOAD_PLUGINS": "bitbucket"}
HTTP_SETUP = "[http]\nallow-hosts: 127.0.0.1\n"
TINY = b"0123456789"
HTTP_SPARES = 1  # idle requesters the http plugin's fork server keeps ready
DEFAULT_STARTSECS = 1.0  # a plugin up this long has its failure count reset


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One line of the table."""

    part: str
    what: str
    value: str
    numbers: dict[str, Any] = field(default_factory=dict)
    must_be_zero: str | None = None  # the key of ``numbers`` that must be 0

    @property
    def ok(self) -> bool:
        return self.must_be_zero is None or self.numbers[self.must_be_zero] == 0


# ----------------------------------------------------------------------- processes


def tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    return {root, *descendants_of(root)}


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (an unreaped zombie has ended)."""
    return {pid for pid in pids if not process_ended(pid)}


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- (a) restarts


def serving(kos: Any) -> bool:
    try:
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("probe", b"x")
        return bool(bb.Get("probe") == b"x")
    except KosError:
        return False


def restart_times(kernel: KernelProcess, runs: int) -> tuple[list[float], list[float]]:
    """SIGKILL bitbucket ``runs`` times: seconds until it is unbound, and until a fresh
    lookup and call work again.
    """
    unbound: list[float] = []
    back: list[float] = []
    with kernel.connect() as kos:
        for run in range(runs):
            pid = kernel.wait_plugin("bitbucket", services=["bitbucket"])
            # let it count as started, so each kill is a first failure (same delay)
            wait_for(
                lambda: (
                    (row := kernel.plugin_row("bitbucket")) and row[4] > DEFAULT_STARTSECS + 0.2
                ),
                10,
                "bitbucket to stay up",
            )
            assert serving(kos)
            start = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while "bitbucket" in kos.list() and time.monotonic() < deadline:
                pass
            unbound.append(time.perf_counter() - start)
            while not serving(kos) and time.monotonic() < deadline:
                time.sleep(0.001)  # leave the CPU to the restarting plugin
            back.append(time.perf_counter() - start)
            say(f"  run {run + 1}: unbound {unbound[-1] * 1000:.1f} ms, back {back[-1]:.3f} s")
    return unbound, back


def part_a(runs: int) -> list[Figure]:
    figures = []
    for label, setup in (
        ("default supervision", "[bitbucket]\n"),
        ("backoff: 0.1", "[bitbucket]\nbackoff: 0.1\n"),
    ):
        say(f"(a) SIGKILL of bitbucket, {label}")
        with private_kernel("a", setup, "bitbucket", ["bitbucket"], ONLY_BB) as kernel:
            unbound, back = restart_times(kernel, runs)
        figures.append(
            Figure(
                "a",
                f"SIGKILL of bitbucket -> unbound ({label})",
                f"{statistics.median(unbound) * 1000:.1f} ms median of {runs}"
                f" (max {max(unbound) * 1000:.1f} ms)",
                {"median_s": statistics.median(unbound), "samples_s": unbound},
            )
        )
        figures.append(
            Figure(
                "a",
                f"SIGKILL of bitbucket -> serving again ({label})",
                f"{statistics.median(back):.3f} s median of {runs} (max {max(back):.3f} s)",
                {"median_s": statistics.median(back), "samples_s": back},
            )
        )
    return figures


# ---------------------------------------------------------- (b) kernel SIGKILL


def part_b(children: int) -> Figure:
    say(f"(b) SIGKILL of a kernel with bitbucket, http and {children} live requesters")
    family: set[int] = set()
    with (
        file_server({"tiny": TINY}) as base,
        private_kernel("b", HTTP_SETUP, "http", ["http"], BOTH) as kernel,
    ):
        try:
            kernel.wait_plugin("bitbucket", services=["bitbucket"])
            kos = kernel.connect()
            requesters = [kos.lookup("http", Factory).GetHTTPRequester() for _ in range(children)]
            for requester in requesters:
                assert requester.Get(base + "tiny").read() == TINY
            for name in ("bitbucket", "http"):
                family |= tree(kernel.wait_plugin(name))
            start = time.monotonic()
            kernel.process.send_signal(signal.SIGKILL)
            kernel.process.wait(5)
            gone_after: float | None = None
            while time.monotonic() - start < 2.0:
                if not alive(family):
                    gone_after = gone_after or time.monotonic() - start
                time.sleep(0.005)
            left = alive(family)
            kos.close()
        finally:
            kill_all(alive(family))  # whatever outlived the measurement
    value = f"{len(left)} of {len(family)}" + (
        f" (all gone {gone_after * 1000:.0f} ms after the kill)" if gone_after is not None else ""
    )
    return Figure(
        "b",
        f"processes left 2 s after SIGKILL of the kernel ({children} live children)",
        value,
        {"left": len(left), "processes": len(family), "all_gone_s": gone_after},
        must_be_zero="left",
    )


# ------------------------------------------------------- (c) children churn


def child_pid(requester: Any) -> int:
    """The pid of a requester child: it serves on ``<runtime dir>/p<PID>.sock``."""
    address, _ = wire.parse_sbh(_rpc.sbh_of(requester) or "")
    return int(Path(address.path or "p0").stem[1:])


def part_c(kernel: KernelProcess, url: str, count: int) -> list[Figure]:
    say(f"(c) {count} requesters made and dropped (half Close(), half dropped)")
    http_pid = kernel.wait_plugin("http", services=["http"])
    fork_servers = children_of(http_pid)
    closed: set[int] = set()
    dropped: set[int] = set()
    most = 0
    start = time.monotonic()
    with kernel.connect() as kos:
        factory = kos.lookup("http", Factory)
        for i in range(count):
            requester = factory.GetHTTPRequester()
            pid = child_pid(requester)
            body = requester.Get(url)
            if body.read() != TINY:
                raise AssertionError("a requester fetched the wrong bytes")
            body.close()
            if i % 2:
                requester.Close()
                closed.add(pid)
            else:
                dropped.add(pid)
            del requester, body  # no reference left: the client is done with it
            if i % 100 == 99:
                most = max(most, len(alive(descendants_of(http_pid)) & (closed | dropped)))
    made = time.monotonic() - start

    def below() -> set[int]:
        # every process below the plugin but its fork server(s)
        return alive(descendants_of(http_pid) - fork_servers)

    def leftover() -> set[int]:
        # the requesters handed out that still run, and spares beyond the plugin's one
        running = below()
        handed = running & (closed | dropped)
        return handed | set(sorted(running - handed)[HTTP_SPARES:])

    settle = time.monotonic()
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not leftover(), 5.0, "every requester to end")
    left = leftover()
    settled = time.monotonic() - settle
    spares = below() - closed - dropped
    figures = [
        Figure(
            "c",
            f"processes left after {count} requesters made and dropped",
            f"{len(left)} after a {settled:.2f} s wait ({len(left & closed)} of the Close()d,"
            f" {len(left & dropped)} of the dropped; {count / made:.0f} made/s,"
            f" {most} alive at most; {len(spares)} idle spare, never handed out)",
            {
                "left": len(left),
                "left_closed": len(left & closed),
                "left_dropped": len(left & dropped),
                "idle_spares": len(spares),
                "settle_s": settled,
                "made_per_s": count / made,
                "most_alive_sampled": most,
            },
            must_be_zero="left",
        )
    ]
    if left:  # are they held by reference cycles the collector has not freed yet?
        gc.collect()
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not leftover(), 5.0, "every requester to end")
        after_gc = leftover()
        figures.append(
            Figure(
                "c",
                "... and after the client's gc.collect()",
                f"{len(after_gc)}",
                {"left": len(after_gc)},
                must_be_zero="left",
            )
        )
    return figures


# ---------------------------------------------------------- (d) hostile input

_Builder = Callable[[random.Random, str], tuple[bytes, bytes | None]]


def _header(length: int, flag: int = 0) -> bytes:
    """An rpyc frame header (length, compressed flag), written by hand."""
    return length.to_bytes(4, "big") + bytes([flag])


def _token_like(rng: random.Random, length: int) -> str:
    return rng.randbytes(length).hex()[:length] or "0"


#: kind -> builder(rng, credential) returning (opening, bytes to send after "OK") —
#: ``credential`` is a wrong token for a child (its right one is for its real client).
GARBAGE: dict[str, _Builder] = {
    "noise": lambda rng, cred: (rng.randbytes(rng.randrange(1, 1024)), None),
    "noise line": lambda rng, cred: (rng.randbytes(rng.randrange(80)) + b"\n", None),
    "stranger": lambda rng, cred: (f"KOS/1 {_token_like(rng, 43)}\n".encode(), None),
    "future": lambda rng, cred: (f"KOS/{rng.randrange(2, 100)} {cred}\n".encode(), None),
    "endless line": lambda rng, cred: (b"KOS/1 " + b"z" * rng.randrange(300, 50_000), None),
    "cut short": lambda rng, cred: (f"KOS/1 {cred}\n".encode()[: rng.randrange(12)], None),
    "hang up": lambda rng, cred: (b"", None),
}
#: with the right credential: past the handshake, into the rpyc layer
INSIDE: dict[str, _Builder] = {
    "eager": lambda rng, cred: (f"KOS/1 {cred}\n".encode() + rng.randbytes(64), None),
    "frame noise": lambda rng, cred: (f"KOS/1 {cred}\n".encode(), rng.randbytes(512)),
    "short frame": lambda rng, cred: (
        f"KOS/1 {cred}\n".encode(),
        _header(100_000) + rng.randbytes(rng.randrange(1000)),
    ),
    "4 GB frame": lambda rng, cred: (f"KOS/1 {cred}\n".encode(), _header(2**32 - 1)),
    "zlib frame": lambda rng, cred: (f"KOS/1 {cred}\n".encode(), _header(8, 1) + bytes(9)),
}


def _one(address: wire.Address, first: bytes, second: bytes | None) -> str:
    sock = address.connect(2.0)
    try:
        sock.settimeout(2.0)
        try:
            sock.sendall(first)
            if second is not None:
                if sock.recv(9) != b"OK KOS/1\n":
                    return "not accepted"
                sock.sendall(second)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except TimeoutError:
            return "kept open"
    finally:
        sock.close()
    return "refused" if reply.startswith(b"NO ") else "closed"


def hostile(
    target: str,
    address: wire.Address,
    credential: str,
    *,
    inside: bool,
    check: Callable[[], bool],
    count: int,
) -> Figure:
    rng = random.Random(zlib.crc32(target.encode()))
    kinds = {**GARBAGE, **(INSIDE if inside else {})}
    names = sorted(kinds)
    outcomes: Counter[str] = Counter()
    failures = tried = 0
    start = time.monotonic()
    while tried < count and time.monotonic() - start < 10.0:
        for _ in range(200):
            first, second = kinds[rng.choice(names)](rng, credential)
            outcomes[_one(address, first, second)] += 1
            tried += 1
        if not check():
            failures += 1
    took = time.monotonic() - start
    say(f"  {target}: {tried} in {took:.1f} s: {dict(outcomes)}")
    return Figure(
        "d",
        f"hostile inputs: {target}",
        f"{tried} tried ({len(kinds)} kinds, {took:.1f} s), {failures} failures",
        {"tried": tried, "failures": failures, "outcomes": dict(outcomes), "seconds": took},
        must_be_zero="failures",
    )


def part_d(kernel: KernelProcess, url: str, count: int) -> list[Figure]:
    say("(d) hostile inputs")
    info = json.loads((kernel.env.runtime_dir / f"{kernel.env.kernel}.kernel.json").read_text())
    figures = []
    with kernel.connect() as kos:

        def kernel_serves() -> bool:
            with contextlib.suppress(KosError), kernel.connect() as fresh:
                return bool(fresh.kernel.Lookup("bitbucket")[0] == "service")
            return False

        figures.append(
            hostile(
                "kernel",
                wire.Address.parse(info["address"]),
                info["secret"],
                inside=True,
                check=kernel_serves,
                count=count,
            )
        )
        address, token = wire.parse_sbh(kos.kernel.Lookup("bitbucket")[2])
        figures.append(
            hostile(
                "plugin (bitbucket)",
                address,
                token,
                inside=True,
                check=lambda: serving(kos),
                count=count,
            )
        )
        requester = kos.lookup("http", Factory).GetHTTPRequester()
        sbh = _rpc.sbh_of(requester)
        assert sbh is not None
        address, token = wire.parse_sbh(sbh)
        wrong = token[::-1] if token[::-1] != token else token + "x"

        def child_serves() -> bool:
            with contextlib.suppress(KosError):
                return bool(requester.Get(url).read() == TINY)
            return False

        figures.append(
            hostile(
                "factory child (requester)",
                address,
                wrong,
                inside=False,
                check=child_serves,
                count=count,
            )
        )
        requester.Close()
    return figures


# ----------------------------------------------------------------------- main


def measure(args: argparse.Namespace) -> list[Figure]:
    figures = part_a(args.runs)
    figures.append(part_b(args.live))
    with (
        file_server({"tiny": TINY}) as base,
        private_kernel("cd", HTTP_SETUP, "http", ["http"], BOTH) as kernel,
    ):
        kernel.wait_plugin("bitbucket", services=["bitbucket"])
        figures.extend(part_d(kernel, base + "tiny", args.hostile))
        figures.extend(part_c(kernel, base + "tiny", args.children))
    return figures


def table(figures: list[Figure]) -> str:
    width = max(len(f.what) for f in figures)
    lines = [f"{'':4}{'figure':<{width}}  value", f"{'':4}{'-' * width}  {'-' * 40}"]
    for f in sorted(figures, key=lambda f: f.part):  # stable: each part in its own order
        mark = "" if f.ok else "  <-- must be 0"
        lines.append(f"({f.part}) {f.what:<{width}}  {f.value}{mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kills per setting in (a)")
    parser.add_argument("--live", type=int, default=5, help="live requesters in (b)")
    parser.add_argument("--children", type=int, default=1000, help="requesters in (c)")
    parser.add_argument("--hostile", type=int, default=2000, help="inputs per socket in (d)")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    figures = measure(args)
    print(f"kos supervision figures ({platform.python_version()}, {os.cpu_count()} CPUs)")
    print(table(figures))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(f) | {"ok": f.ok} for f in figures], fh, indent=2)
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
