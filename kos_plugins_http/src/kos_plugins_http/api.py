"""``HTTPAPI``: the interfaces of the http plugin (successor of HTTPAPI.isl)."""

from __future__ import annotations

from kos_core.errors import InterfaceError
from kos_core.fileapi import File, FileIOError
from kos_core.interface import Interface, raises

__all__ = ["Factory", "FactoryFailed", "FileIOError", "Requester"]


class FactoryFailed(InterfaceError):
    """The factory could not make a requester (the message says why)."""

    wire_name = "HTTPAPI.FactoryFailed"


class Requester(Interface, wire_name="HTTPAPI.Requester"):
    """A private URL fetcher, served by a child process made for one client."""

    @raises(FileIOError)
    def Get(self, url: str) -> File:
        """Fetch ``url`` (http, https or ftp); the body as a file, by reference."""
        raise NotImplementedError

    @raises(FileIOError)
    def GetWithInfo(self, url: str) -> tuple[list[tuple[str, str]], File]:
        """Fetch ``url``; the response headers as ``(key, value)`` pairs, and the body."""
        raise NotImplementedError

    def Close(self) -> None:
        """End this requester; its child process exits."""
        raise NotImplementedError


class Factory(Interface, wire_name="HTTPAPI.Factory"):
    """Gives each client its own :class:`Requester` (bound as ``http``)."""

    @raises(FactoryFailed)
    def GetHTTPRequester(self) -> Requester:
        """Gets a protocol access object: a new requester, just for the caller."""
        raise NotImplementedError
