"""The kernel operations on KPs, as one connection sees them (mixed into the kernel's
session, whose :class:`~kos_core._kernel.access.Grant` they check first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kos_core._kernel import access
from kos_core._kp import migration
from kos_core.errors import PermissionDenied
from kos_core.kernel_api import KPRow, KPTraveller

if TYPE_CHECKING:
    from kos_core._kernel.access import Grant
    from kos_core._kp.station import Station


class KPOperations:
    """``SubmitKP``, ``KPs``, ``KillKP``, ``MigrateKP`` and ``ReceiveKP`` of
    ``KernelAPI.Kernel``.
    """

    grant: Grant

    @property
    def station(self) -> Station:
        """The kernel's station."""
        raise NotImplementedError

    def SubmitKP(
        self, target: str, source: str, args: list[str], limits: str, unconfined: bool = False
    ) -> str:
        self.grant.check_operator("submitting a KP")
        return self.station.submit(target, source, args, limits, unconfined=unconfined)

    def KPs(self) -> list[KPRow]:
        self.grant.check_operator("the KP table")
        return self.station.rows()

    def KillKP(self, kp: str) -> str:
        self.grant.check_operator("killing a KP")
        return self.station.kill(kp)

    def MigrateKP(self, kernel: str, state: bytes) -> str:
        if self.grant.kind != access.KP:
            raise PermissionDenied(f"only a KP migrates, and only itself (this is {self.grant})")
        return migration.send(self.station, self.grant.name, kernel, state)

    def ReceiveKP(self, kp: KPTraveller, state: bytes) -> str:
        self.grant.check_operator("handing a KP to this kernel")
        return migration.receive(self.station, migration.Traveller(*kp, state))
