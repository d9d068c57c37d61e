"""The plugin each kernel of the world benchmark runs (``file:`` in its setup).

It binds :data:`SERVICES` (ten bitbuckets, exported with ``export: yes``) and a
``control`` bucket through which the benchmark makes it bind or unbind one more
name, :data:`PROBE`: ``control.Set("bind", b"")`` binds it (returning once the kernel
has it bound), ``control.Set("unbind", b"")`` unbinds it. Any other call is an
ordinary bucket's.
"""

from __future__ import annotations

import threading

from kos_core import pluginlib
from kos_plugins_bitbucket.plugin import BitBucket

#: the plugin's section name in the benchmark's setup file
PLUGIN = "names"
#: the exported services every kernel has from its start
SERVICES = tuple(f"bb{i}" for i in range(10))
#: the name bound and unbound on demand (its propagation is what is timed)
PROBE = "probe"
#: where the control bucket is bound
CONTROL = "control"
TYPE = "BitBucketAPI.BitBucket"


class Control(BitBucket):
    """A bucket whose ``Set("bind"|"unbind", ...)`` binds or unbinds :data:`PROBE`."""

    def __init__(self, kos: pluginlib.PluginKos) -> None:
        super().__init__()
        self._kos = kos
        self._probe: str | None = None
        self._bind_lock = threading.Lock()

    def Set(self, name: str, data: bytes) -> None:
        with self._bind_lock:
            if name == "bind" and self._probe is None:
                self._probe = self._kos.bind_service(PROBE, BitBucket(), TYPE)
                return
            if name == "unbind" and self._probe is not None:
                sid, self._probe = self._probe, None
                self._kos.unbind_service(sid)
                return
        super().Set(name, data)


def main() -> None:
    """Register, bind the services and the control bucket, serve until stopped."""
    kos, _ns = pluginlib.register(PLUGIN)
    sids = [kos.bind_service(name, BitBucket(), TYPE) for name in SERVICES]
    sids.append(kos.bind_service(CONTROL, Control(kos), TYPE))
    print(f"{PLUGIN} plugin bound {len(sids)} services", flush=True)
    try:
        kos.run()
    finally:
        for sid in sids:
            kos.unbind_service(sid)


if __name__ == "__main__":
    main()
