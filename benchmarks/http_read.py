"""Reading a large body through a kos Requester, against urllib3 in the benchmark itself.

The requester child fetches with urllib3 and hands the body back in one ``read()``
reply; the direct series is the same urllib3 call made by the benchmark process.
Both read the same file from the same loopback server, in alternation.
See ``README.md`` beside this file.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import urllib3

import kos_core
from children import http_setup
from common import Log, Stats, private_kernel
from kos_core import KosError

BIG_SIZE = 50_000_000  # 50 MB
READ_TARGET = 0.50  # kos MB/s >= 50 % of direct


@dataclass(frozen=True)
class ReadSettings:
    """How many reads of each series."""

    warmup: int
    iterations: int


READ_FULL = ReadSettings(warmup=1, iterations=5)
READ_QUICK = ReadSettings(warmup=1, iterations=2)


@dataclass
class ReadResult:
    """kos against direct urllib3 for one body size (stats: seconds per read, in µs)."""

    size: int
    kos: Stats | None  # None if no read through kos finished
    direct: Stats
    kos_mb_s: float  # size / median time (0 if no read finished)
    direct_mb_s: float
    ratio: float  # kos MB/s / direct MB/s
    target: float
    passed: bool
    error: str = ""  # why the kos reads stopped, if they did


def _mb_s(size: int, stats: Stats) -> float:
    return size / (stats.median_us / 1e6) / 1e6


def run_http_read(base_url: str, content: bytes, settings: ReadSettings, log: Log) -> ReadResult:
    """Time ``req.Get(url).read()`` and the direct urllib3 read of ``base_url + "big"``."""
    url = base_url + "big"
    size = len(content)
    clock = time.perf_counter_ns
    pool = urllib3.PoolManager()

    def direct() -> int:
        start = clock()
        response = pool.request("GET", url, preload_content=False)
        data = response.read()
        elapsed = clock() - start
        response.release_conn()
        if data != content:
            raise RuntimeError("the direct read returned the wrong body")
        return elapsed

    def through_kos(requester: Any) -> int:
        start = clock()
        body = requester.Get(url)
        data = body.read()
        elapsed = clock() - start
        body.close()
        if data != content:
            raise RuntimeError("the requester returned the wrong body")
        return elapsed

    kos_ns: list[int] = []
    direct_ns: list[int] = []
    error = ""
    log("starting a kernel with the http plugin (max-size: 200000000) ...")
    with private_kernel("r", http_setup("fork"), "http", ["http"]), kos_core.connect() as kos:
        requester = kos.lookup("http").GetHTTPRequester()  # one requester for every read
        try:
            for _ in range(settings.warmup):
                through_kos(requester)
                direct()
            log(f"timing {settings.iterations} reads of {size // 1_000_000} MB, each way ...")
            for i in range(settings.iterations):
                if i % 2 == 0:
                    kos_ns.append(through_kos(requester))
                    direct_ns.append(direct())
                else:
                    direct_ns.append(direct())
                    kos_ns.append(through_kos(requester))
        except KosError as exc:  # e.g. no answer within the call timeout
            error = f"{type(exc).__name__}: {exc}"
            log(f"a read through kos failed: {error}")
            while len(direct_ns) < settings.iterations:
                direct_ns.append(direct())
        finally:
            with contextlib.suppress(KosError):
                requester.Close()
    pool.clear()
    direct_stats = Stats.of(direct_ns)
    direct_mb_s = _mb_s(size, direct_stats)
    kos_stats = Stats.of(kos_ns) if kos_ns and not error else None
    kos_mb_s = _mb_s(size, kos_stats) if kos_stats is not None else 0.0
    ratio = kos_mb_s / direct_mb_s
    return ReadResult(
        size,
        kos_stats,
        direct_stats,
        kos_mb_s,
        direct_mb_s,
        ratio,
        READ_TARGET,
        ratio >= READ_TARGET,
        error,
    )


def format_http_read(result: ReadResult) -> list[str]:
    """The table of the large-read part."""
    mb = result.size // 1_000_000
    rows = [("direct: urllib3 .read()", result.direct, result.direct_mb_s)]
    if result.kos is not None:
        rows.insert(0, ("kos: req.Get(url).read()", result.kos, result.kos_mb_s))
    lines = [
        f"reading a {mb} MB body over loopback HTTP; MB/s from the median time",
        "",
        f"{'series':<28}{'MB/s':>9}{'median s':>10}{'slowest s':>11}{'reads':>7}",
    ]
    for label, stats, mb_s in rows:
        lines.append(
            f"{label:<28}{mb_s:>9.1f}{stats.median_us / 1e6:>10.3f}"
            f"{stats.max_us / 1e6:>11.3f}{stats.calls:>7}"
        )
    verdict = "PASS" if result.passed else "MISS"
    if result.error:
        lines.append(f"kos: req.Get(url).read() failed: {result.error}")
    lines += [
        "",
        f"kos / direct: {result.ratio:.2f}  (target >= {result.target:.2f})  {verdict}",
    ]
    return lines
