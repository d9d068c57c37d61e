"""The bitbucket plugin in its own process, through a real kernel: long key names fill
the bucket, so they cannot grow the plugin's memory past its capacity.

Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kos_core.testing import KernelProcess, StartKernel
from kos_plugins_bitbucket import BitBucket, BucketFull

ONLY_BITBUCKET = "[DEFAULTS]\nrun-at-boot: no\n\n[bitbucket]\nrun-at-boot: yes\n"
NAMES = 1500
NAME_SIZE = 100_000


def rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def bucket(start_kernel: StartKernel) -> tuple[KernelProcess, int]:
    """A kernel running only bitbucket (default capacity), and the plugin's pid."""
    kernel = start_kernel(setup=ONLY_BITBUCKET)
    return kernel, kernel.wait_plugin("bitbucket", services=["bitbucket"])


def test_many_long_names_are_refused_and_memory_stays_bounded(
    bucket: tuple[KernelProcess, int],
) -> None:
    kernel, pid = bucket
    with kernel.connect() as kos:
        bb = kos.lookup("bitbucket", BitBucket)
        bb.Set("warm", b"up")  # the plugin's connection is set up before measuring
        bb.Delete("warm")
        before = rss_kib(pid)
        accepted = refused = 0
        for i in range(NAMES):
            name = f"{i:05d}".ljust(NAME_SIZE, "n")
            try:
                bb.Set(name, b"")
                accepted += 1
            except BucketFull:
                refused += 1
        grew = rss_kib(pid) - before
        assert accepted == 1 and refused == NAMES - 1
        assert [len(name) for name in bb.List()] == [NAME_SIZE]
    print(
        f"\n{NAMES} Set(<{NAME_SIZE} byte name>, b''): {accepted} accepted,"
        f" {refused} BucketFull; plugin RSS {before // 1024} -> {(before + grew) // 1024} MiB"
    )
    # the bucket holds at most its capacity (100 KiB); allow for the allocator's slack
    assert grew < 16 * 1024, f"the plugin grew by {grew} KiB"
