"""kos-plugins-http: fetch http, https and ftp URLs on behalf of clients, one child per client.

Clients import the interfaces and exceptions from here::

    from kos_plugins_http import Factory, Requester, FactoryFailed, FileIOError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Factory, FactoryFailed, FileIOError, Requester

__all__ = ["Factory", "FactoryFailed", "FileIOError", "Requester"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package for its hooks module only, and
    # must not pay for the interfaces (and what they import) to list commands.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
