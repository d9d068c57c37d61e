"""The http plugin process: a factory that gives each client its own requester child.

Run by the kernel as ``python -m kos_plugins_http.plugin -n KERNEL``. Settings come
from the plugin's setup-file section (see the README). Requesters are forked from a
preloaded fork server (``child-start: fork``, the default and fast path), which keeps
one spare requester process forked and warmed up ahead of need, or started as
``requester.py`` through :func:`~kos_core.pluginlib.spawnserver` (``child-start: exec``).
"""

from __future__ import annotations

from pathlib import Path

from kos_core import pluginlib

from .api import FactoryFailed, Requester
from .policy import Policy, setting_number

#: requester processes the fork server keeps forked ahead of need (``spare-children``)
DEFAULT_SPARES = 1
MAX_SPARES = 32


class Factory:
    """Implements ``HTTPAPI.Factory``."""

    def __init__(
        self, policy: Policy, child_start: str = "fork", spares: int = DEFAULT_SPARES
    ) -> None:
        if child_start not in ("fork", "exec"):
            raise ValueError(f"child-start: {child_start!r} is not fork or exec")
        if not 0 <= spares <= MAX_SPARES:
            raise ValueError(f"spare-children: {spares} is not between 0 and {MAX_SPARES}")
        self._policy_json = policy.to_json()
        self._children = (
            pluginlib.ChildFactory(
                "kos_plugins_http.requester:make_requester", Requester.wire_name, spares=spares
            )
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


def make_factory(kos: object) -> Factory:
    """The factory, configured from the ``[http]`` setup-file section."""
    options = pluginlib.options()
    try:
        policy = Policy.from_options(options)
        spares = int(setting_number(options, "spare-children", DEFAULT_SPARES, int))
        return Factory(policy, options.get("child-start", "fork").strip(), spares)
    except ValueError as exc:
        raise ValueError(f"bad setting in [http]: {exc}") from None


def main() -> None:
    """Register, bind the factory as ``http``, serve until stopped."""
    pluginlib.serve("http", "http", "HTTPAPI.Factory", make_factory)


if __name__ == "__main__":
    main()
