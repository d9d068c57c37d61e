"""The http plugin's settings: the keys of its ``[http]`` setup-file section.

Declared in its ``PluginSpec``, so the kernel checks them when it reads the setup files
(a bad value is an error naming the file and line) and ``kos plugins --settings http``
lists them. Keep this module light: the kernel and the CLI import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kos_core.hookspecs import Setting

if TYPE_CHECKING:
    import ipaddress

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: the most ``spare-children`` may be
MAX_SPARES = 32


def network(pattern: str) -> Network | None:
    """The network a host pattern names (``10.0.0.0/8``, ``::1``), or ``None`` for a name
    or a wildcard pattern; ``ValueError`` for something that looks like a network but is not.
    """
    if not any(c.isdigit() for c in pattern) or "*" in pattern:
        return None
    import ipaddress  # only for a pattern that names a network (kos --help needs none)

    try:
        return ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        if "/" in pattern:
            raise ValueError(f"bad network {pattern!r}") from None
        return None


def _check_patterns(patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        network(pattern)


ALLOW_HOSTS = Setting(
    "allow-hosts",
    tuple,
    (),
    "hosts requesters may contact; when set, only these (unset: public addresses only)",
    check=_check_patterns,
)
DENY_HOSTS = Setting(
    "deny-hosts",
    tuple,
    (),
    "hosts never contacted, even when allow-hosts lists them",
    check=_check_patterns,
)
MAX_SIZE = Setting("max-size", int, 100 * 1024 * 1024, "the largest body, in bytes", minimum=0)
MAX_REDIRECTS = Setting(
    "max-redirects", int, 5, "the most redirects followed for one URL", minimum=0
)
TIMEOUT = Setting(
    "timeout",
    float,
    30.0,
    "seconds for connecting, and again for each wait for data",
    minimum=0,
)
CA_FILE = Setting(
    "ca-file", str, "", "a PEM file of CA certificates to trust for https (unset: the system's)"
)
CHILD_START = Setting(
    "child-start",
    str,
    "fork",
    "how requester processes start: forked from a fork server, or a fresh interpreter",
    choices=("fork", "exec"),
)
SPARE_CHILDREN = Setting(
    "spare-children",
    int,
    1,
    "with fork: requester processes kept forked ahead of need",
    minimum=0,
    maximum=MAX_SPARES,
)
#: the defaults of these two are those of ``pluginlib.ChildLimits``
MAX_REQUESTERS_PER_CLIENT = Setting(
    "max-requesters-per-client",
    int,
    8,
    "requester processes one client connection may have running at once",
    minimum=1,
)
MAX_REQUESTERS = Setting(
    "max-requesters",
    int,
    64,
    "requester processes all clients together may have running at once",
    minimum=1,
)

SETTINGS = (
    ALLOW_HOSTS,
    DENY_HOSTS,
    MAX_SIZE,
    MAX_REDIRECTS,
    TIMEOUT,
    CA_FILE,
    CHILD_START,
    SPARE_CHILDREN,
    MAX_REQUESTERS_PER_CLIENT,
    MAX_REQUESTERS,
)
