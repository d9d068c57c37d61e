"""The http plugin's numbers must be finite: ``timeout: nan`` (or ``inf``) is refused when
the plugin starts, like any other bad setting, instead of failing every request later
(a socket refuses a timeout of nan or inf).
"""

from __future__ import annotations

import pytest

from httptest_helpers import ONLY_HTTP
from kos_core.testing import KernelProcess, KosEnv, wait_for
from kos_plugins_http.policy import Policy, setting_number

NOT_FINITE = ("nan", "NaN", "inf", "-inf", "1e999")


@pytest.mark.parametrize("value", NOT_FINITE)
def test_a_timeout_that_is_not_finite_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        Policy.from_options({"timeout": value})
    assert str(caught.value) == f"timeout: {value!r} is not a finite number"


@pytest.mark.parametrize("value", ["0", "0.25", "1e2"])
def test_a_finite_timeout_is_read(value: str) -> None:
    assert Policy.from_options({"timeout": value}).timeout == float(value)


@pytest.mark.parametrize("key", ["max-size", "max-redirects", "spare-children"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_whole_number_setting_refuses_nan_and_inf(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}: {value!r} is not a number$"):
        setting_number({key: value}, key, 1, int)


def test_the_kernel_reports_a_nan_timeout_as_the_plugins_last_exit(kos_env: KosEnv) -> None:
    kos_env.write_setup(f"{ONLY_HTTP}[http]\nrun-at-boot: yes\nrestart: never\ntimeout: nan\n")
    kernel = KernelProcess(kos_env)
    try:
        kernel.wait_ready()
        row = wait_for(
            lambda: (r := kernel.plugin_row("http")) and r[1] == "exited" and r,
            20,
            "the http plugin to refuse its setting",
        )
        assert row[5] == (
            "exit status 2: kos plugin http: error: bad setting in [http]:"
            " timeout: 'nan' is not a finite number"
        ), row
    finally:
        kernel.stop()
