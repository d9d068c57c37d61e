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
_REQUEST_OVERHEAD = 64 * 1024  # room for the framing around a name and value
_SHORTOPTS = "c:"
_LONGOPTS = ("capacity=",)


def entry_size(name: str, data: bytes) -> int:
    """What one entry uses of the capacity: its name (UTF-8) and its value, in bytes."""
    return len(name.encode("utf-8", "surrogatepass")) + len(data)


class BitBucket:
    """Implements ``BitBucketAPI.BitBucket``: values by name, total size never above capacity.

    The size of an entry is that of its name (UTF-8) plus that of its value (see
    :func:`entry_size`), so many entries with long names fill the bucket as surely as
    long values do. A request larger than the capacity (plus room for framing) is
    refused by kos before it is held in memory, and answered with :class:`BucketFull`.
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
        size = entry_size(name, data)
        with self._lock:
            held = self.entries.get(name)
            old = 0 if held is None else entry_size(name, held)
            new_size = self.cur_size - old + size
            if new_size > self.capacity:
                raise BucketFull(
                    f"{size} bytes ({len(data)} of value, {size - len(data)} of name) for"
                    f" {_shown(name)} do not fit:"
                    f" {self.capacity - self.cur_size + old} of {self.capacity} bytes free"
                )
            self.entries[name] = data
            self.cur_size = new_size

    def Get(self, name: str) -> bytes:
        with self._lock:
            try:
                return self.entries[name]
            except KeyError:
                raise NotFound(f"nothing is stored under {_shown(name)}") from None

    def Delete(self, name: str) -> None:
        with self._lock:
            try:
                data = self.entries.pop(name)
            except KeyError:
                raise NotFound(f"nothing is stored under {_shown(name)}") from None
            self.cur_size -= entry_size(name, data)

    def List(self) -> list[str]:
        with self._lock:
            return sorted(self.entries)

    def kos_too_large(self, method: str, size: int) -> None:
        """What a request too large to accept means here: it cannot fit."""
        raise BucketFull(
            f"a {method} request of {size} bytes cannot fit in a bucket of {self.capacity} bytes"
        )


def _shown(name: str, limit: int = 80) -> str:
    """``name`` as it appears in a message: quoted, and cut short if it is long."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


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
