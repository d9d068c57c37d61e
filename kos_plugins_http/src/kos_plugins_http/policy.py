"""What a requester may fetch: schemes, hosts, size, redirects and time.

Read from the plugin's section of the setup files (see the README and
:mod:`.settings`)::

    [http]
    allow-hosts: *.example.org 127.0.0.1
    deny-hosts: private.example.org
    max-size: 104857600
    max-redirects: 5
    timeout: 30
    ca-file: /etc/ssl/my-ca.pem
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from kos_core.fileapi import FileIOError

from .settings import (
    ALLOW_HOSTS,
    CA_FILE,
    DENY_HOSTS,
    MAX_REDIRECTS,
    MAX_SIZE,
    TIMEOUT,
    network,
)

SCHEMES = ("http", "https", "ftp")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 prefixes whose last 32 bits are an IPv4 address that traffic is carried to:
#: IPv4-compatible (``::/96``, deprecated) and the well-known NAT64 prefix (RFC 6052)
_LOW_32_BITS_IPV4 = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
)
#: the local-use NAT64 prefix (RFC 8215): a translator on the local network, never public
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclass(frozen=True)
class Policy:
    """The limits one requester works under."""

    allow_hosts: tuple[str, ...] = ALLOW_HOSTS.default
    deny_hosts: tuple[str, ...] = DENY_HOSTS.default
    max_size: int = MAX_SIZE.default
    max_redirects: int = MAX_REDIRECTS.default
    timeout: float = TIMEOUT.default
    ca_file: str = CA_FILE.default
    #: the setup file of the plugin's section, named in refusals ("" if unknown)
    setup_file: str = ""

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], setup_file: str = "") -> Policy:
        """Build from the plugin's settings (``pluginlib.settings()``: checked, typed)."""
        return cls(
            allow_hosts=values[ALLOW_HOSTS.name],
            deny_hosts=values[DENY_HOSTS.name],
            max_size=values[MAX_SIZE.name],
            max_redirects=values[MAX_REDIRECTS.name],
            timeout=values[TIMEOUT.name],
            ca_file=values[CA_FILE.name],
            setup_file=setup_file,
        )

    def to_json(self) -> str:
        """The policy as a JSON string (to hand to a child)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """The policy :meth:`to_json` wrote."""
        data = json.loads(text)
        data["allow_hosts"] = tuple(data["allow_hosts"])
        data["deny_hosts"] = tuple(data["deny_hosts"])
        return cls(**data)

    def check_url(self, url: str) -> None:
        """Raise :class:`FileIOError` unless ``url`` may be fetched."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            raise FileIOError(f"bad URL {url!r}: {exc}") from None
        if parts.scheme.lower() not in SCHEMES:
            raise FileIOError(
                f"scheme {parts.scheme or '(none)'!r} is not allowed in {url!r}"
                f" (allowed: {', '.join(SCHEMES)})"
            )
        if not host:
            raise FileIOError(f"no host in {url!r}")
        self.check_host(host.lower())

    def check_host(self, host: str) -> list[Address]:
        """The addresses of ``host`` that may be contacted (all of them, unless
        ``allow-hosts`` admits it by network: then those in the networks); raise
        :class:`FileIOError` if there are none.
        """
        addresses = _addresses(host)
        if _matches(host, addresses, self.deny_hosts, embedded=True):
            raise FileIOError(f"host {host!r} is denied by deny-hosts")
        if self.allow_hosts:
            if _matches(host, [], self.allow_hosts):  # allowed by name
                return addresses
            allowed = [a for a in addresses if _matches(host, [a], self.allow_hosts)]
            if not allowed:
                raise FileIOError(f"host {host!r} is not in allow-hosts{self._where()}")
            return allowed
        for address in addresses:
            if not is_public(address):
                inside = ", ".join(str(a) for a in embedded_ipv4(address))
                raise FileIOError(
                    f"host {host!r} is a local or private address ({address}"
                    + (f", which carries {inside}" if inside else "")
                    + f"); to allow it, list it in allow-hosts{self._where()}"
                )
        return addresses

    def _where(self) -> str:
        """Where allow-hosts is set: the [http] section of the plugin's setup file."""
        return f" in the [http] section of {self.setup_file}" if self.setup_file else ""


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries traffic to: IPv4-mapped
    (``::ffff:0:0/96``), IPv4-compatible (``::/96``), NAT64 (``64:ff9b::/96``),
    6to4 (``2002::/16``) and Teredo (``2001::/32``: its server and its client). Empty for
    an IPv4 address and for every other IPv6 address.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if any(address in prefix for prefix in _LOW_32_BITS_IPV4):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def is_public(address: Address) -> bool:
    """True if ``address`` is globally reachable and so is every IPv4 address it carries
    traffic to (see :func:`embedded_ipv4`); the local-use NAT64 prefix never is.

    The embedded forms are judged by the IPv4 addresses they carry, decoded here, not by
    ``is_global`` of the IPv6 address, whose answer for them differs between Python
    versions (3.13 calls all of 6to4 non-global, 3.11 lets ``::127.0.0.1`` through).
    """
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
        return False
    inner = embedded_ipv4(address)
    if inner:
        return all(ipv4.is_global for ipv4 in inner)
    return address.is_global


def _addresses(host: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise FileIOError(f"cannot resolve host {host!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _matches(
    host: str,
    addresses: list[Address],
    patterns: tuple[str, ...],
    *,
    embedded: bool = False,
) -> bool:
    """True if ``host`` or one of its ``addresses`` matches a pattern; with ``embedded``,
    an IPv4 address an IPv6 address carries traffic to counts as one of its addresses.
    """
    if embedded:
        addresses = [*addresses, *(inner for a in addresses for inner in embedded_ipv4(a))]
    for pattern in patterns:
        net = network(pattern)
        if net is not None:
            if any(a in net for a in addresses):
                return True
        elif fnmatchcase(host, pattern.lower()):
            return True
    return False
