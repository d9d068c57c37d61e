"""kos-plugins-hello: says hello. Clients import the interface from here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Greeter, NoName

__all__ = ["Greeter", "NoName"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI imports this package for its hooks module only, and
    # must not pay for the interfaces (and what they import) to list commands.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
