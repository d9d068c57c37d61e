"""kos-plugins-http: fetch http, https and ftp URLs on behalf of clients, one child per client.

Clients import the interfaces and exceptions from here::

    from kos_plugins_http import Factory, Requester, FactoryFailed, FileIOError
"""

from __future__ import annotations

from .api import Factory, FactoryFailed, FileIOError, Requester

__all__ = ["Factory", "FactoryFailed", "FileIOError", "Requester"]
