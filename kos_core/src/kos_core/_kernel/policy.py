"""How the kernel supervises one plugin: restarts, backoff, health checks, log rotation.

Read from the plugin's setup-file section (``[DEFAULTS]`` applies too):

=================  ===========  =====================================================
key                default      meaning
=================  ===========  =====================================================
restart            on-failure   ``always``, ``on-failure`` (exit status not 0, or killed)
                                or ``never``
startsecs          1            seconds a plugin must stay up to count as started
startretries       3            quick failures in a row before the plugin is FATAL
backoff            1            seconds before the first restart; doubles each time
backoff-max        30           the most the restart delay grows to
health-interval    2            seconds between health pings (0: no health checks)
health-timeout     2            seconds a ping may take before the plugin is unhealthy
log-max-bytes      1048576      size at which the plugin's log file is rotated
log-backups        3            rotated log files kept
=================  ===========  =====================================================

Numbers must be finite and not negative: ``nan``, ``inf`` or ``-1`` is an error that
names the file and line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

RESTART_CHOICES = ("always", "on-failure", "never")


class Supervision(NamedTuple):
    """The supervision settings of one plugin (a named tuple: kos --help imports this
    module, and a dataclass takes longer to make).
    """

    restart: str = "on-failure"
    startsecs: float = 1.0
    startretries: int = 3
    backoff: float = 1.0
    backoff_max: float = 30.0
    health_interval: float = 2.0
    health_timeout: float = 2.0
    log_max_bytes: int = 1024 * 1024
    log_backups: int = 3
    #: seconds a started plugin has to register before it is killed (0: no limit)
    register_timeout: float = 10.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before restart number ``failures`` (1, 2, ...)."""
        return float(min(self.backoff_max, self.backoff * 2 ** max(0, failures - 1)))


_NUMBERS: dict[str, tuple[str, type[int] | type[float]]] = {
    "startsecs": ("startsecs", float),
    "startretries": ("startretries", int),
    "backoff": ("backoff", float),
    "backoff-max": ("backoff_max", float),
    "health-interval": ("health_interval", float),
    "health-timeout": ("health_timeout", float),
    "log-max-bytes": ("log_max_bytes", int),
    "log-backups": ("log_backups", int),
    "register-timeout": ("register_timeout", float),
}


#: every key :func:`parse_supervision` reads
SUPERVISION_KEYS = ("restart", *_NUMBERS)


def parse_supervision(
    options: Mapping[str, str], report: Callable[[str, str], None]
) -> Supervision | None:
    """Read the supervision keys of a section; ``report(key, message)`` each bad one.

    Returns ``None`` if anything was reported.
    """
    values: dict[str, object] = {}
    ok = True
    restart = options.get("restart", "on-failure").strip().lower()
    if restart not in RESTART_CHOICES:
        report("restart", f'bad value for restart: "{restart}" (use {", ".join(RESTART_CHOICES)})')
        ok = False
    values["restart"] = restart
    for key, (field, kind) in _NUMBERS.items():
        raw = options.get(key)
        if raw is None:
            continue
        try:
            number = kind(raw.strip())
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            report(key, f'bad value for {key}: "{raw.strip()}" (use {noun})')
            ok = False
            continue
        if not math.isfinite(number):  # nan would switch a check off without a word
            report(key, f'bad value for {key}: "{raw.strip()}" (use a finite number)')
            ok = False
            continue
        if number < 0:
            report(key, f'bad value for {key}: "{raw.strip()}" (must not be negative)')
            ok = False
            continue
        values[field] = number
    return Supervision(**values) if ok else None  # type: ignore[arg-type]
