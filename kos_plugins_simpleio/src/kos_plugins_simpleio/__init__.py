"""kos-plugins-simpleio: a Tk talk window per client on the kernel's display.

Clients import the interface and its exception from here::

    from kos_plugins_simpleio import SimpleIOFactory, SpawnError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import SimpleIOFactory, SpawnError

__all__ = ["SimpleIOFactory", "SpawnError"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package for its hooks module only, and
    # must not pay for the interfaces (and what they import) to list commands.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
