"""A station's policy for KPs: the ``[kp-access]`` section of the setup files.

=============  ===========  ============================================================
key            default      meaning
=============  ===========  ============================================================
lookup         (nothing)    names a KP may look up and list (top-level names or paths,
                            separated by spaces or commas); ``*`` for everything. A KP
                            always may look up and list its own ``kps/<id>/``
accept         yes          accept KPs migrating here from another kernel
cpu            10           CPU seconds a KP may use (``--limit cpu=``)
mem            256          MiB of address space (``--limit mem=``)
wall           60           seconds a KP may run, by the clock (``--limit wall=``)
max-cpu        60           the most ``--limit cpu=`` may ask for
max-mem        1024         the most ``--limit mem=`` may ask for
max-wall       3600         the most ``--limit wall=`` may ask for
processes      32           tasks (processes and threads) a KP may run at once
files          64           files a KP may hold open at once
file-size      64           MiB: the largest file a KP may write
landlock       1            the oldest Landlock ABI the station accepts to confine a KP
                            (6 adds signal and abstract-socket scoping)
=============  ===========  ============================================================

With no ``[kp-access]`` section a KP may look up nothing but its own context, and
runs under the defaults above.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from kos_core._kernel import namespace
from kos_core.errors import UsageError

SECTION = "kp-access"
_BOOLEANS = {"1": True, "yes": True, "true": True, "on": True}
_BOOLEANS.update({"0": False, "no": False, "false": False, "off": False})


@dataclass(frozen=True)
class Limits:
    """What one KP may use."""

    cpu: int = 10
    mem: int = 256
    wall: int = 60
    processes: int = 32
    files: int = 64
    file_size: int = 64

    def __str__(self) -> str:
        return f"cpu={self.cpu},mem={self.mem},wall={self.wall}"


@dataclass(frozen=True)
class KPAccess:
    """A station's ``[kp-access]`` policy."""

    lookup: tuple[str, ...] = ()
    accept: bool = True
    limits: Limits = field(default_factory=Limits)
    ceilings: Limits = field(default_factory=lambda: Limits(cpu=60, mem=1024, wall=3600))
    landlock: int = 1

    def may_look(self, kp: str) -> Callable[[list[str]], bool]:
        """The check of the paths KP ``kp`` may look up and list."""
        allowed = [namespace.split_path(name) for name in self.lookup if name != "*"]
        everything = "*" in self.lookup

        def check(parts: list[str]) -> bool:
            if parts[:2] == ["kps", kp]:
                return True
            if everything and parts[:1] != ["kps"]:
                return True
            return any(parts[: len(a)] == a for a in allowed if a)

        return check

    def limits_for(self, asked: str) -> Limits:
        """The limits of one KP: the defaults, with what ``asked`` (``cpu=5,mem=64``)
        changes; raises :class:`UsageError` past a ceiling or on a malformed request.
        """
        values: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in asked.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in ("cpu", "mem", "wall"):
                raise UsageError(f"bad limit {item!r}: use cpu=SECONDS, mem=MiB or wall=SECONDS")
            try:
                number = int(raw)
            except ValueError:
                raise UsageError(f"bad limit {item!r}: {raw!r} is not a whole number") from None
            ceiling = getattr(self.ceilings, key)
            if not 1 <= number <= ceiling:
                raise UsageError(f"limit {key}={number} is not within 1..{ceiling} here")
            values[key] = number
        return replace(self.limits, **values)


_NUMBERS = {
    "cpu": ("limits", "cpu"),
    "mem": ("limits", "mem"),
    "wall": ("limits", "wall"),
    "processes": ("limits", "processes"),
    "files": ("limits", "files"),
    "file-size": ("limits", "file_size"),
    "max-cpu": ("ceilings", "cpu"),
    "max-mem": ("ceilings", "mem"),
    "max-wall": ("ceilings", "wall"),
    "landlock": ("station", "landlock"),
}


def parse_access(options: Mapping[str, str], report: Callable[[str, str], None]) -> KPAccess | None:
    """Read a ``[kp-access]`` section; ``report(key, message)`` each bad value.

    Returns ``None`` if anything was reported.
    """
    ok = True
    lookup = tuple(p for p in options.get("lookup", "").replace(",", " ").split() if p)
    for name in lookup:
        try:
            if name != "*":
                namespace.split_path(name)
        except UsageError as exc:
            report("lookup", f"bad name in lookup: {exc}")
            ok = False
    accept = True
    if "accept" in options:
        value = _BOOLEANS.get(options["accept"].strip().lower())
        if value is None:
            report("accept", f'bad value for accept: "{options["accept"]}" (use yes or no)')
            ok = False
        accept = bool(value)
    found: dict[str, dict[str, int]] = {"limits": {}, "ceilings": {}, "station": {}}
    for key, (group, attr) in _NUMBERS.items():
        if key not in options:
            continue
        try:
            number = int(options[key].strip())
        except ValueError:
            number = 0
        if number < 1:
            report(key, f'bad value for {key}: "{options[key].strip()}" (use a whole number > 0)')
            ok = False
            continue
        found[group][attr] = number
    if not ok:
        return None
    defaults = KPAccess()
    return KPAccess(
        lookup,
        accept,
        replace(defaults.limits, **found["limits"]),
        replace(defaults.ceilings, **found["ceilings"]),
        **found["station"],
    )


def reachable_sbh(sbh: str, server_pid: int | None, runtime_dir: Path) -> str:
    """The SBH a confined KP is given for a service at ``sbh``: a KP has no network but
    its station's Unix sockets, so a service served over TCP by a local process that
    also listens on its Unix socket (``<runtime>/p<pid>.sock``: every plugin serving
    TCP does) is given there, with the same token. Anything else is given as it is.
    """
    from kos_core._net import wire

    address, token = wire.parse_sbh(sbh)
    if address.path is not None or not server_pid:
        return sbh
    local = runtime_dir / f"p{server_pid}.sock"
    if not local.exists():
        return sbh
    return wire.format_sbh(wire.Address(path=str(local)), token)
