"""The interfaces known by wire name: those declared so far (each
:class:`~kos_core.interface.Interface` subclass registers itself), and those the
``kos.interfaces`` entry points of installed distributions declare, imported on first
use. :func:`find_interface` is public through :mod:`kos_core.interface`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kos_core._entry_points import entry_points
from kos_core._hints import did_you_mean
from kos_core.errors import InterfaceNotFound

if TYPE_CHECKING:
    from kos_core.interface import Interface

_INTERFACES: dict[str, type[Interface]] = {}


def register(wire_name: str, interface: type[Interface]) -> None:
    """Know ``interface`` by ``wire_name`` (a later declaration of the name replaces it)."""
    _INTERFACES[wire_name] = interface


def find_interface(wire_name: str) -> type[Interface]:
    """The interface declared under ``wire_name``.

    Looks in what is already imported, then in the ``kos.interfaces`` entry points.
    Raises :class:`~kos_core.errors.InterfaceNotFound`.
    """
    found = _INTERFACES.get(wire_name)
    if found is not None:
        return found
    module_name = wire_name.partition(".")[0]
    for ep in entry_points(group="kos.interfaces", name=module_name):
        try:
            ep.load()
        except Exception as exc:  # a broken distribution must not break lookups of others
            raise InterfaceNotFound(
                f"interface {wire_name}: loading {ep.value} failed: {exc}"
            ) from exc
    found = _INTERFACES.get(wire_name)
    if found is None:
        prefix = f"{module_name}."
        siblings = [n.removeprefix(prefix) for n in _INTERFACES if n.startswith(prefix)]
        if siblings:
            name = wire_name.removeprefix(prefix)
            raise InterfaceNotFound(
                f"unknown interface {wire_name!r}: {module_name} declares no {name!r}"
                f"{did_you_mean(name, siblings)} (it declares: {', '.join(sorted(siblings))})"
            )
        raise InterfaceNotFound(
            f"unknown interface {wire_name!r}: no installed distribution declares"
            f" {module_name!r}{did_you_mean(module_name, _known_modules())}"
        )
    return found


def _known_modules() -> set[str]:
    """The interface module names installed distributions declare, and those imported."""
    names = {ep.name for ep in entry_points(group="kos.interfaces")}
    return names | {n.partition(".")[0] for n in _INTERFACES}
