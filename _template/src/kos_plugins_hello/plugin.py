"""The hello plugin process."""

from __future__ import annotations

import threading

from kos_core import pluginlib

from .api import NoName
from .hooks import GREETING


class Greeter:
    """Implements ``HelloAPI.Greeter``. Calls come on several threads: guard state."""

    def __init__(self, greeting: str = GREETING.default) -> None:
        self._greeting = greeting
        self._count = 0
        self._lock = threading.Lock()

    def Hello(self, name: str) -> str:
        if not name:
            raise NoName("hello to whom? give a name")
        with self._lock:
            self._count += 1
        return f"{self._greeting}, {name}"

    def Count(self) -> int:
        with self._lock:
            return self._count


def main() -> None:
    """Register, bind the service as ``hello``, serve until stopped."""
    kos, _ns = pluginlib.register("hello")
    settings = pluginlib.settings()  # [hello] of the setup files, checked and typed
    sid = kos.bind_service("hello", Greeter(settings[GREETING]), "HelloAPI.Greeter")
    try:
        kos.run()
    finally:
        kos.unbind_service(sid)


if __name__ == "__main__":
    main()
