"""Simulated kernels of the world benchmark: light etcd writers and watchers.

Usage::

    python benchmarks/world_fanout.py ETCD_URL COUNT CA_FINGERPRINT MAX_SECONDS

Each simulated kernel does what a kernel does to etcd, with kos's own client
(``kos_core._world.etcd``) and key layout: it holds a lease (TTL :data:`SIM_TTL`,
renewed every third of it), creates its
record ``kernels/simNNNN`` and one exported name ``names/simNNNN/bb0`` under that
lease, and watches the whole prefix on a stream of its own (one thread each, reading every
event). The watches start once every simulated kernel has joined: watchers opened
first would each receive every other one's joining, a million events for a
thousand kernels, which is what a thousand kernels starting at once would cost etcd
but not what this benchmark times. A simulated kernel's lease lives longer than a
real one's (``LEASE_TTL``, 6 s): a thousand keep-alives
every two seconds, each a request through etcd's JSON gateway from one Python
process, take longer than the lease on a busy two-core machine, and the simulated
kernels' leases expired under them. Prints one JSON line once all are joined and
watching, then
runs until its stdin closes or ``MAX_SECONDS`` pass; then it revokes its leases.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kos_core._net import wire
from kos_core._world.etcd import Etcd, Watch
from kos_core._world.layout import KernelRecord, Layout, Name
from kos_core._world.url import WorldURL
from kos_core.errors import WorldUnavailable

#: threads writing (joining, renewing, revoking)
WRITERS = 8
#: the simulated kernels' lease, seconds (renewed every third of it)
SIM_TTL = 30


class Simulated:
    """One simulated kernel: its lease, its record and name, and its watch."""

    def __init__(self, index: int, etcd: Etcd, layout: Layout, ca: str) -> None:
        self.name = f"sim{index:04d}"
        self.host = f"127.1.{index // 250}.{index % 250 + 1}"
        self.etcd = etcd
        self.layout = layout
        self.ca = ca
        self.lease = 0
        self.watch: Watch | None = None

    def join(self) -> None:
        """Take a lease, write the record and the name."""
        self.lease = self.etcd.grant(SIM_TTL)
        record = KernelRecord(
            name=self.name,
            host="simulated",
            address=f"{self.host}:7000",
            ca=self.ca,
            protocol=wire.PROTOCOL_VERSION,
            started=time.time(),
            pid=0,
        )
        self.etcd.create(self.layout.kernel_key(self.name), record.encode(), self.lease)
        sbh = wire.format_sbh(wire.Address(host=self.host, port=7001), "t" * 32)
        name = Name("BitBucketAPI.BitBucket", sbh)
        self.etcd.put(self.layout.name_key(self.name, "bb0"), name.encode(), self.lease)

    def start_watch(self, revision: int) -> None:
        """Watch the prefix from ``revision`` on."""
        self.watch = self.etcd.watch(self.layout.prefix, revision)

    def leave(self) -> None:
        """Revoke the lease (it may have expired already)."""
        with contextlib.suppress(WorldUnavailable):
            self.etcd.revoke(self.lease)

    def read(self) -> None:
        """Read the watch's events until it is closed."""
        assert self.watch is not None
        try:
            for _batch in self.watch:
                pass
        except WorldUnavailable:
            pass


def main(argv: list[str]) -> int:
    """Join ``COUNT`` simulated kernels, keep them alive, report."""
    url, count, ca, max_seconds = WorldURL.parse(argv[0]), int(argv[1]), argv[2], float(argv[3])
    threading.stack_size(256 * 1024)
    etcd = Etcd(url, timeout=10.0)
    layout = Layout(url.prefix)
    sims = [Simulated(i, etcd, layout, ca) for i in range(count)]
    start = time.monotonic()
    done = threading.Event()
    deadline = start + max_seconds

    def renew() -> None:  # from the start: joining all may take longer than a lease
        with ThreadPoolExecutor(WRITERS) as pool:
            while not done.wait(SIM_TTL / 3) and time.monotonic() < deadline:
                joined = [sim.lease for sim in sims if sim.lease]
                list(pool.map(etcd.keepalive, joined))
        done.set()

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda sim: sim.join(), sims))
        revision, _ = etcd.range_prefix(layout.kernels + "sim")
        list(pool.map(lambda sim: sim.start_watch(revision + 1), sims))
    for sim in sims:
        threading.Thread(target=sim.read, daemon=True).start()
    print(json.dumps({"joined": count, "seconds": time.monotonic() - start}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    renewer.join()
    for sim in sims:
        if sim.watch is not None:
            sim.watch.close()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda sim: sim.leave(), sims))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
