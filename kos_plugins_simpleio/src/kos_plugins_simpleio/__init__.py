"""kos-plugins-simpleio: a Tk talk window per client on the kernel's display.

Clients import the interface and its exception from here::

    from kos_plugins_simpleio import SimpleIOFactory, SpawnError
"""

from __future__ import annotations

from .api import SimpleIOFactory, SpawnError

__all__ = ["SimpleIOFactory", "SpawnError"]
