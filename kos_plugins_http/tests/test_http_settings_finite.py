"""The http plugin's numbers must be finite: ``timeout: nan`` (or ``inf``) is refused when
the kernel reads the setup files, naming the file and line, like any other bad setting,
instead of failing every request later (a socket refuses a timeout of nan or inf).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from httptest_helpers import ONLY_HTTP
from kos_core.testing import KosEnv
from kos_plugins_http.settings import SETTINGS, TIMEOUT

NOT_FINITE = ("nan", "NaN", "inf", "-inf", "1e999")


@pytest.mark.parametrize("value", NOT_FINITE)
def test_a_timeout_that_is_not_finite_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        TIMEOUT.convert(value)
    assert str(caught.value) == f'bad value for timeout: "{value}" (use a finite number)'


@pytest.mark.parametrize("value", ["0", "0.25", "1e2"])
def test_a_finite_timeout_is_read(value: str) -> None:
    assert TIMEOUT.convert(value) == float(value)


@pytest.mark.parametrize("key", ["max-size", "max-redirects", "spare-children"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_whole_number_setting_refuses_nan_and_inf(key: str, value: str) -> None:
    setting = next(s for s in SETTINGS if s.name == key)
    with pytest.raises(ValueError) as caught:
        setting.convert(value)
    assert str(caught.value) == f'bad value for {key}: "{value}" (use a whole number)'


def test_the_kernel_refuses_a_nan_timeout_naming_the_file_and_line(kos_env: KosEnv) -> None:
    path = kos_env.write_setup(f"{ONLY_HTTP}[http]\nrun-at-boot: yes\ntimeout: nan\n")
    result = subprocess.run(
        [sys.executable, "-m", "kos_core.cli", "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f'kos: error: {path}:6: bad value for timeout: "nan" (use a finite number)'
    ]
