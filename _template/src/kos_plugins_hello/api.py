"""``HelloAPI``: the interface of the hello service."""

from __future__ import annotations

from kos_core.errors import InterfaceError
from kos_core.interface import Interface, raises


class NoName(InterfaceError):
    """Hello to whom? The name was empty."""

    wire_name = "HelloAPI.NoName"


class Greeter(Interface, wire_name="HelloAPI.Greeter"):
    """Greets people."""

    @raises(NoName)
    def Hello(self, name: str) -> str:
        """A greeting for ``name``."""
        raise NotImplementedError

    def Count(self) -> int:
        """How many greetings this service has given."""
        raise NotImplementedError
