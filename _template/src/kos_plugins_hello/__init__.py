"""kos-plugins-hello: says hello. Clients import the interface from here."""

from __future__ import annotations

from .api import Greeter, NoName

__all__ = ["Greeter", "NoName"]
