"""``kos run`` refuses a supervision number that is not finite (``health-interval: nan``
would switch the health checks off) with the file and line, and starts nothing.
"""

from __future__ import annotations

import pytest

from kos_core.testing import KosEnv
from kos_helpers import Cli, assert_one_line_error, connection_file


@pytest.mark.parametrize(
    ("key", "value"),
    [("health-interval", "nan"), ("startsecs", "nan"), ("health-timeout", "inf")],
)
def test_kos_run_refuses_a_number_that_is_not_finite(
    kos_env: KosEnv, cli: Cli, key: str, value: str
) -> None:
    path = kos_env.write_setup(f"[bitbucket]\nrun-at-boot: 1\n\n{key}: {value}\n")
    result = cli("run", timeout=20)
    assert_one_line_error(
        result, 2, f"{path}:4:", f'bad value for {key}: "{value}" (use a finite number)'
    )
    assert not connection_file(kos_env).exists()
    assert_one_line_error(cli("plugins"), 2, f"{path}:4:", key)
