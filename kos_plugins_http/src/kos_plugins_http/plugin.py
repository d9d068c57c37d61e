"""The http plugin process: a factory that gives each client its own requester child.

Run by the kernel as ``python -m kos_plugins_http.plugin -n KERNEL``. Settings come
from the plugin's setup-file section (see the README). Requesters are forked from a
preloaded fork server (``child-start: fork``, the default and fast path) or started
as ``requester.py`` through :func:`~kos_core.pluginlib.spawnserver`
(``child-start: exec``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kos_core import pluginlib

from .api import FactoryFailed, Requester
from .policy import Policy


class Factory:
    """Implements ``HTTPAPI.Factory``."""

    def __init__(self, policy: Policy, child_start: str = "fork") -> None:
        if child_start not in ("fork", "exec"):
            raise ValueError(f"child-start: {child_start!r} is not fork or exec")
        self._policy_json = policy.to_json()
        self._children = (
            pluginlib.ChildFactory("kos_plugins_http.requester:make_requester", Requester.wire_name)
            if child_start == "fork"
            else None
        )

    def GetHTTPRequester(self) -> Requester:
        if self._children is not None:
            sbh, _pid, _pids = self._children.spawn(self._policy_json)
        else:
            script = str(Path(__file__).with_name("requester.py"))
            sbh, _pid, _pids = pluginlib.spawnserver(script, self._policy_json)
        if not sbh:
            raise FactoryFailed("could not start a requester process (see the kernel's log)")
        return pluginlib.object_of_sbh(sbh, Requester)  # type: ignore[no-any-return]


def main() -> None:
    """Register, bind the factory as ``http``, serve until stopped."""
    kos, _ns = pluginlib.register("http")
    options = pluginlib.options()
    try:
        factory = Factory(Policy.from_options(options), options.get("child-start", "fork").strip())
    except ValueError as exc:
        print(f"kos plugin http: error: bad setting in [http]: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    sid = kos.bind_service("http", factory, "HTTPAPI.Factory")
    print(f"http plugin registered {sid}", flush=True)
    try:
        kos.run()
    finally:
        kos.unbind_service(sid)


if __name__ == "__main__":
    main()
