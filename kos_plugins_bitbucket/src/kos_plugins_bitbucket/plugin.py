"""The bitbucket plugin process.

Run by the kernel as ``python -m kos_plugins_bitbucket.plugin -n KERNEL [--capacity N]``.
"""

from __future__ import annotations

import getopt
import sys
import threading

from kos_core import pluginlib

from .api import BucketFull, NotFound

DEFAULT_CAPACITY = 102400
_REQUEST_OVERHEAD = 64 * 1024  # room for the name and framing around a value
_SHORTOPTS = "c:"
_LONGOPTS = ("capacity=",)


class BitBucket:
    """Implements ``BitBucketAPI.BitBucket``: values by name, total size never above capacity.

    A request larger than the capacity (plus room for the name) is refused by kos
    before it is held in memory, and answered with :class:`BucketFull`.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self.capacity = capacity
        self.kos_max_request = capacity + _REQUEST_OVERHEAD
        self.entries: dict[str, bytes] = {}
        self.cur_size = 0
        self._lock = threading.Lock()

    def Set(self, name: str, data: bytes) -> None:
        with self._lock:
            old = len(self.entries.get(name, b""))
            new_size = self.cur_size - old + len(data)
            if new_size > self.capacity:
                raise BucketFull(
                    f"{len(data)} bytes for {name!r} do not fit:"
                    f" {self.capacity - self.cur_size + old} of {self.capacity} bytes free"
                )
            self.entries[name] = data
            self.cur_size = new_size

    def Get(self, name: str) -> bytes:
        with self._lock:
            try:
                return self.entries[name]
            except KeyError:
                raise NotFound(f"nothing is stored under {name!r}") from None

    def Delete(self, name: str) -> None:
        with self._lock:
            try:
                data = self.entries.pop(name)
            except KeyError:
                raise NotFound(f"nothing is stored under {name!r}") from None
            self.cur_size -= len(data)

    def List(self) -> list[str]:
        with self._lock:
            return sorted(self.entries)

    def kos_too_large(self, method: str, size: int) -> None:
        """What a request too large to accept means here: it cannot fit."""
        raise BucketFull(
            f"a {method} request of {size} bytes cannot fit in a bucket of {self.capacity} bytes"
        )


def parse_capacity(argv: list[str]) -> int:
    """The ``-c/--capacity`` option of a plugin command line (bytes)."""
    opts, _ = getopt.getopt(argv, "n:" + _SHORTOPTS, ["kernel=", *_LONGOPTS])
    capacity = DEFAULT_CAPACITY
    for opt, value in opts:
        if opt in ("-c", "--capacity"):
            if not value.isdigit():
                raise getopt.GetoptError(f"--capacity needs a number of bytes, not {value!r}")
            capacity = int(value)
    return capacity


def main() -> None:
    """Register, bind the bucket, serve until stopped."""
    kos, _ns = pluginlib.register("bitbucket", None, _SHORTOPTS, _LONGOPTS)
    capacity = parse_capacity(sys.argv[1:])
    sid = kos.bind_service("bitbucket", BitBucket(capacity), "BitBucketAPI.BitBucket")
    print(f"bitbucket plugin registered {sid} ({capacity} bytes)", flush=True)
    try:
        kos.run()
    finally:
        kos.unbind_service(sid)
        print("bitbucket plugin exiting", flush=True)


if __name__ == "__main__":
    main()
