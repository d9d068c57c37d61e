"""Example 9 of the 1998 KOS tutorial: one class used as a plugin and as a KP.

``Network.__main__(kos, ns=None)`` gets ``ns`` (its private context) when it runs as a
plugin and no ``ns`` when it runs as a Knowbot Program, and so knows which it is. It
binds one service, ``foo``: at the top of the namespace as the plugin ``foo``, under
``kps/<id>/foo`` as a KP (the KP's ``kos`` binds there and nowhere else).

As a plugin (a setup file's ``[foo]`` section with ``file: examples/network_kp.py``,
or by hand: ``python examples/network_kp.py -n KERNEL``)::

    kos call foo Where                 # ['plugin', 'KERNEL', 'plugins/foo']

As a KP::

    kos kp submit examples/network_kp.py:Network
    kos call kps/ID/foo Where          # ['kp', 'KERNEL', '']

(``kos call`` finds the ``NetworkAPI`` interface only where an installed distribution
declares it; from Python, import this file and pass ``NetworkAPI`` to ``lookup``.)
"""

from __future__ import annotations

import os
from typing import Any

from kos_core import Context, pluginlib
from kos_core.interface import Interface


class NetworkAPI(Interface, wire_name="NetworkAPI.Network"):
    """What ``foo`` serves."""

    def Where(self) -> tuple[str, str, str]:
        """``(role, kernel, context)``: ``"plugin"`` or ``"kp"``, the kernel it serves
        at, and the path of the context it was given (``""``: the station's top).
        """
        raise NotImplementedError

    def Pid(self) -> int:
        """The process that serves it."""
        raise NotImplementedError


class Network:
    """A plugin or a KP, as the station's security policy dictates."""

    def __main__(self, kos: Any, ns: Context | None = None) -> None:
        self.kos = kos
        if ns:
            self.ns = ns  # we're a plugin
        else:
            self.ns = kos.get_namespace()  # we're a KP
        self.role = "plugin" if ns else "kp"
        self.service = self.kos.bind_service("foo", self, NetworkAPI.wire_name)
        self.kos.run()  # serve until stopped (a KP: until its station ends it)

    def Where(self) -> tuple[str, str, str]:
        return (self.role, self.kos.name, self.ns.path)

    def Pid(self) -> int:
        return os.getpid()


def main() -> None:
    """Run ``Network`` as the plugin ``foo``."""
    p = Network()
    p.__main__(*pluginlib.register("foo"))


if __name__ == "__main__":
    main()
