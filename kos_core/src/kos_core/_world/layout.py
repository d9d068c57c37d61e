"""The world's keys in etcd, and the checks a value read back must pass.

Under the world's prefix (default ``/kos/``)::

    <prefix>kernels/<kernel>          the kernel record (JSON, below), one per kernel
    <prefix>names/<kernel>/<path>     one exported name: {"type": ..., "sbh": ...}

Every key a kernel writes is held by that kernel's lease. Anything read from etcd is
untrusted until checked here: a value that is not what kos writes (garbage, too
large, a name not under its kernel's address, a record claiming another kernel's
address) is refused with a reason, which the cache logs and then ignores.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from kos_core._kernel import namespace
from kos_core._net import wire
from kos_core._os import paths
from kos_core.errors import KosError

#: the largest value kos writes or believes (records and names are small)
MAX_VALUE = 16 * 1024


class BadValue(ValueError):
    """A key or value under the prefix that kos did not write (the reason is its text)."""


@dataclass(frozen=True)
class KernelRecord:
    """What a kernel tells the world about itself."""

    name: str
    host: str  # the machine's host name, for people
    address: str  # the kernel's TCP+TLS address, HOST:PORT
    ca: str  # SHA-256 fingerprint of the world authority it was given
    protocol: int
    started: float  # wall clock
    pid: int

    def encode(self) -> bytes:
        """The record's value in etcd."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @property
    def listen_host(self) -> str:
        """The host of :attr:`address` (where its exported services listen too)."""
        parsed = wire.Address.parse(self.address)
        assert parsed.host is not None
        return parsed.host


@dataclass(frozen=True)
class Name:
    """One exported name: its interface and the SBH of the object (over TCP+TLS)."""

    typename: str
    sbh: str

    def encode(self) -> bytes:
        """The name's value in etcd."""
        return json.dumps({"type": self.typename, "sbh": self.sbh}, sort_keys=True).encode()


class Layout:
    """The keys of one world (one prefix of one etcd cluster)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.kernels = f"{prefix}kernels/"
        self.names = f"{prefix}names/"

    def kernel_key(self, kernel: str) -> str:
        """The key of a kernel's record."""
        return f"{self.kernels}{kernel}"

    def name_key(self, kernel: str, path: str) -> str:
        """The key of one name a kernel exports."""
        return f"{self.names}{kernel}/{path}"

    def names_of(self, kernel: str) -> str:
        """The prefix of every name a kernel exports."""
        return f"{self.names}{kernel}/"

    def parse_key(self, key: str) -> tuple[str, str, str]:
        """``("kernel", name, "")`` or ``("name", kernel, path)`` for a key under the
        prefix; raise :class:`BadValue` for any other key.
        """
        try:
            if key.startswith(self.kernels):
                return ("kernel", paths.check_name(key[len(self.kernels) :], "kernel"), "")
            if key.startswith(self.names):
                kernel, _, path = key[len(self.names) :].partition("/")
                parts = namespace.split_path(path)
                if not parts:
                    raise BadValue(f"{key!r} names no path")
                return ("name", paths.check_name(kernel, "kernel"), namespace.join(parts))
        except KosError as exc:
            raise BadValue(f"{key!r}: {exc}") from None
        raise BadValue(f"{key!r} is not a key kos writes")


def _object(value: bytes) -> dict[str, Any]:
    if len(value) > MAX_VALUE:
        raise BadValue(f"a value of {len(value)} bytes (at most {MAX_VALUE})")
    try:
        data = json.loads(value)
    except ValueError:
        raise BadValue("a value that is not JSON") from None
    if not isinstance(data, dict):
        raise BadValue("a value that is not a JSON object")
    return data


def parse_record(kernel: str, value: bytes) -> KernelRecord:
    """The kernel record of ``kernel`` from its value; :class:`BadValue` if it is not
    one kos writes (fields, types, an address that is not HOST:PORT, another name).
    """
    data = _object(value)
    try:
        record = KernelRecord(
            name=_str(data, "name"),
            host=_str(data, "host"),
            address=_str(data, "address"),
            ca=_str(data, "ca"),
            protocol=int(data["protocol"]),
            started=float(data["started"]),
            pid=int(data["pid"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadValue(f"a kernel record without a valid field {exc}") from None
    if record.name != kernel:
        raise BadValue(f"a record of kernel {record.name!r} under the key of {kernel!r}")
    try:
        address = wire.Address.parse(record.address)
    except (KosError, ValueError) as exc:
        raise BadValue(f"a kernel address {record.address!r}: {exc}") from None
    if address.host is None:
        raise BadValue(f"a kernel address {record.address!r} that is not HOST:PORT")
    return record


def parse_name(value: bytes) -> Name:
    """An exported name from its value; :class:`BadValue` unless its SBH is a TCP one."""
    data = _object(value)
    try:
        name = Name(_str(data, "type"), _str(data, "sbh"))
        address, _ = wire.parse_sbh(name.sbh)
    except (KeyError, TypeError, ValueError, KosError) as exc:
        raise BadValue(f"a name without a valid type and SBH ({exc})") from None
    if address.host is None:
        raise BadValue("a name whose SBH is not a TCP address")
    return name


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or len(value) > 1024:
        raise TypeError(repr(key))
    return value
