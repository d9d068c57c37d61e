"""The station credential kind: another world kernel's station may hand a kernel a KP
and nothing else, whatever it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from kos_core._kernel import access
from kos_core._kernel.access import Grant
from kos_core._kernel.servant import StationServant
from kos_core._kp.migration import arrived_from
from kos_core._kp.station import Station
from kos_core.errors import PermissionDenied
from kos_core.kernel_api import Kernel

GRANT = Grant(access.STATION, "ka")


def test_a_station_grant_may_not_look_bind_register_or_act_as_the_operator() -> None:
    checks: list[Callable[[], None]] = [
        lambda: GRANT.check_look(""),
        lambda: GRANT.check_look("world/kb"),
        lambda: GRANT.check_bind("kps/ka/x", {}),
        lambda: GRANT.check_register("ka"),
        lambda: GRANT.check_operator("the plugin table"),
    ]
    for check in checks:
        with pytest.raises(PermissionDenied, match="the station of kernel 'ka'"):
            check()


def test_a_station_session_refuses_every_kernel_method_but_receive_kp() -> None:
    servant: Any = StationServant(cast(Station, None), GRANT)
    others = sorted(set(Kernel.methods()) - {"ReceiveKP"})
    assert "Lookup" in others and "SubmitKP" in others and "Info" in others
    for name in others:
        with pytest.raises(PermissionDenied, match=f"not call {name}"):
            getattr(servant, name)("x")
    with pytest.raises(AttributeError):
        servant.NotAKernelMethod  # noqa: B018  (the lookup is what is tested)
    assert servant.kos_larger_requests.keys() == {"ReceiveKP"}


def test_the_origin_is_the_kernel_the_certificate_names() -> None:
    assert arrived_from("ka", "from ka (KP 0badc0de)") == "from ka (KP 0badc0de)"
    assert arrived_from("ka", "from kz (KP 0badc0de)") == "from ka (KP 0badc0de)"
    assert arrived_from("ka", "from the operator, trust me") == "from ka"
