"""A world's address: ``etcd://`` or ``etcds://`` URLs, parsed and checked."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from kos_core.errors import UsageError


@dataclass(frozen=True)
class WorldURL:
    """Where a world's etcd is: ``etcd://HOST:PORT[,HOST:PORT...]`` (plain HTTP) or
    ``etcds://...`` (TLS, with ``?ca=FILE&cert=FILE&key=FILE``: the authority etcd's
    certificate must chain to, and the client certificate and key kos presents; ``cert``
    alone names a file holding both), and the prefix its keys are under
    (``?prefix=/kos/``). A user and password (``etcd://USER@...`` and
    ``$KOS_WORLD_PASSWORD``) are for a cluster with authentication on.
    """

    endpoints: tuple[tuple[str, int], ...]
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    prefix: str = "/kos/"

    @classmethod
    def parse(cls, text: str, password: str | None = None) -> WorldURL:
        """Parse a world URL; raise :class:`UsageError` naming what is wrong."""
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("etcd", "etcds"):
            raise UsageError(f"bad world {text!r}: use etcd://HOST:PORT or etcds://HOST:PORT")
        user, _, hosts = parts.netloc.rpartition("@")
        if ":" in user:
            raise UsageError("put the etcd password in $KOS_WORLD_PASSWORD, not in the URL")
        endpoints: list[tuple[str, int]] = []
        for item in hosts.split(","):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise UsageError(f"bad world {text!r}: {item!r} is not HOST:PORT")
            endpoints.append((host.strip("[]"), int(port)))
        query = dict(urllib.parse.parse_qsl(parts.query))
        unknown = set(query) - {"ca", "cert", "key", "prefix"}
        if unknown:
            raise UsageError(f"bad world {text!r}: unknown option {sorted(unknown)[0]!r}")
        prefix = query.get("prefix", "/kos/")
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise UsageError(f"bad world {text!r}: the prefix must start and end with '/'")
        if parts.scheme == "etcd" and {"ca", "cert", "key"} & set(query):
            raise UsageError(f"bad world {text!r}: ca, cert and key are for etcds://")
        if "key" in query and "cert" not in query:
            raise UsageError(f"bad world {text!r}: key= needs cert= (the client certificate)")
        return cls(
            tuple(endpoints),
            tls=parts.scheme == "etcds",
            ca=query.get("ca"),
            cert=query.get("cert"),
            key=query.get("key"),
            user=user or None,
            password=password,
            prefix=prefix,
        )

    @property
    def loopback_only(self) -> bool:
        """True if every endpoint is on this machine's loopback."""
        return all(h in ("localhost", "::1") or h.startswith("127.") for h, _ in self.endpoints)

    def __str__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"{'etcds' if self.tls else 'etcd'}://{hosts}"
