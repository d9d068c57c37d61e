"""The http plugin process: a factory that gives each client its own requester child.

Run by the kernel as ``python -m kos_plugins_http.plugin -n KERNEL``. Settings come
from the plugin's setup-file section (declared in :mod:`.settings`; see the README).
Requesters are forked from a preloaded fork server (``child-start: fork``, the default
and fast path), which keeps one spare requester process forked and warmed up ahead of
need, or started as ``requester.py`` through :func:`~kos_core.pluginlib.spawnserver`
(``child-start: exec``).
"""

from __future__ import annotations

from pathlib import Path

from kos_core import pluginlib

from .api import FactoryFailed, Requester
from .policy import Policy
from .settings import (
    CHILD_START,
    MAX_REQUESTERS,
    MAX_REQUESTERS_PER_CLIENT,
    MAX_SPARES,
    SPARE_CHILDREN,
)

#: requester processes the fork server keeps forked ahead of need (``spare-children``)
DEFAULT_SPARES = SPARE_CHILDREN.default
#: the settings that cap running requesters, by the scope of ChildLimitReached
LIMIT_SETTINGS = {"client": MAX_REQUESTERS_PER_CLIENT.name, "total": MAX_REQUESTERS.name}


class Factory:
    """Implements ``HTTPAPI.Factory``."""

    def __init__(
        self,
        policy: Policy,
        child_start: str = "fork",
        spares: int = DEFAULT_SPARES,
        limits: pluginlib.ChildLimits | None = None,
    ) -> None:
        if child_start not in ("fork", "exec"):
            raise ValueError(f"child-start: {child_start!r} is not fork or exec")
        if not 0 <= spares <= MAX_SPARES:
            raise ValueError(f"spare-children: {spares} is not between 0 and {MAX_SPARES}")
        self._policy_json = policy.to_json()
        self._limits = limits if limits is not None else pluginlib.ChildLimits()
        self._children = (
            pluginlib.ChildFactory(
                "kos_plugins_http.requester:make_requester",
                Requester.wire_name,
                spares=spares,
                limits=self._limits,
                make_ahead=True,  # a Requester is only a connection pool, made empty
            )
            if child_start == "fork"
            else None
        )

    def GetHTTPRequester(self) -> Requester:
        try:
            if self._children is not None:
                sbh, _pid, _pids = self._children.spawn(self._policy_json)
            else:
                script = str(Path(__file__).with_name("requester.py"))
                sbh, _pid, _pids = self._limits.start(
                    lambda: pluginlib.spawnserver(script, self._policy_json)
                )
        except pluginlib.ChildLimitReached as exc:
            setting = LIMIT_SETTINGS[exc.scope]
            whose = "for this client" if exc.scope == "client" else "in all"
            raise FactoryFailed(
                f"{exc.live} requesters are running {whose}, the most that {setting}"
                f" ({exc.limit}) allows: close one (Close()), or raise {setting} in [http]"
            ) from None
        if not sbh:
            raise FactoryFailed("could not start a requester process (see the kernel's log)")
        return pluginlib.object_of_sbh(sbh, Requester)  # type: ignore[no-any-return]


def make_factory(kos: object) -> Factory:
    """The factory, configured from the ``[http]`` setup-file section."""
    values = pluginlib.settings()  # checked by the kernel; ValueError when started by hand
    limits = pluginlib.ChildLimits(values[MAX_REQUESTERS_PER_CLIENT], values[MAX_REQUESTERS])
    return Factory(
        Policy.from_settings(values, pluginlib.setup_file()),
        values[CHILD_START],
        values[SPARE_CHILDREN],
        limits,
    )


def main() -> None:
    """Register, bind the factory as ``http``, serve until stopped."""
    pluginlib.serve("http", "http", "HTTPAPI.Factory", make_factory)


if __name__ == "__main__":
    main()
