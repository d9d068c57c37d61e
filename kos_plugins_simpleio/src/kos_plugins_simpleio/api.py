"""``SimpleIOAPI``: a talk window per client on the kernel's display."""

from __future__ import annotations

from kos_core.errors import InterfaceError
from kos_core.fileapi import File
from kos_core.interface import Interface, raises

__all__ = ["SimpleIOFactory", "SpawnError"]


class SpawnError(InterfaceError):
    """No window could be made (above all: no display); the message says why."""

    wire_name = "SimpleIOAPI.SpawnError"


class SimpleIOFactory(Interface, wire_name="SimpleIOAPI.SimpleIOFactory"):
    """Gives each client its own window (bound as ``simpleio``)."""

    @raises(SpawnError)
    def GetNewSimpleIO(self) -> File:
        """A new window of the default size, as a text file."""
        raise NotImplementedError

    @raises(SpawnError)
    def GetNewSimpleIOWH(self, height: int, width: int) -> File:
        """A new window of ``height`` lines and ``width`` columns, as a text file."""
        raise NotImplementedError
