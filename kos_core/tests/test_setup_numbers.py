"""The supervision numbers of a setup file (``startsecs``, ``health-interval``...): a value
that is not a finite, non-negative number is refused with the file and line that set it.

``float()`` reads "nan", "inf" and "1e999" without complaint, and ``nan < 0`` is false:
unchecked, ``health-interval: nan`` would switch the health checks off without a word.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kos_core._kernel.policy import Supervision
from kos_core._kernel.setup_files import load_setup
from kos_core.errors import SetupFileError

KERNEL = "kern"
INSTALLED = ("bitbucket",)
#: the keys whose values are read as decimal numbers (the others are whole numbers)
FLOAT_KEYS = (
    "startsecs",
    "backoff",
    "backoff-max",
    "health-interval",
    "health-timeout",
    "register-timeout",
)
NOT_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity", "1e999")


def refusal(config_dir: Path) -> SetupFileError:
    with pytest.raises(SetupFileError) as info:
        load_setup(config_dir, KERNEL, INSTALLED)
    return info.value


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_a_number_that_is_not_finite_is_refused_at_its_line(
    tmp_path: Path, key: str, value: str
) -> None:
    path = tmp_path / "plugins"
    path.write_text(f"# supervision\n[bitbucket]\nrun-at-boot: 1\n{key}: {value}\n")
    error = refusal(tmp_path)
    assert (error.path, error.line) == (str(path), 4)
    assert error.message == f'bad value for {key}: "{value}" (use a finite number)'
    assert str(error).startswith(f"{path}:4: ")


@pytest.mark.parametrize("key", ["startretries", "log-max-bytes", "log-backups"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_whole_number_key_refuses_nan_and_inf_as_not_whole(
    tmp_path: Path, key: str, value: str
) -> None:
    (tmp_path / "plugins").write_text(f"[bitbucket]\n{key}: {value}\n")
    error = refusal(tmp_path)
    assert error.line == 2
    assert error.message == f'bad value for {key}: "{value}" (use a whole number)'


def test_a_number_that_is_not_finite_in_defaults_is_refused_at_the_defaults_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plugins"
    path.write_text("[DEFAULTS]\nhealth-interval: nan\n\n[bitbucket]\nrun-at-boot: 1\n")
    error = refusal(tmp_path)
    assert (error.path, error.line) == (str(path), 2)
    assert "health-interval" in error.message and "finite" in error.message


def test_a_number_that_is_not_finite_in_a_later_layer_names_that_layer(tmp_path: Path) -> None:
    (tmp_path / "plugins").write_text("[bitbucket]\nstartsecs: 2\n")
    local = tmp_path / "plugins.local"
    local.write_text("[bitbucket]\n\nstartsecs: inf\n")
    error = refusal(tmp_path)
    assert (error.path, error.line) == (str(local), 3)


def test_finite_numbers_in_every_spelling_are_still_read(tmp_path: Path) -> None:
    (tmp_path / "plugins").write_text(
        "[bitbucket]\nstartsecs: 0\nhealth-interval: 1e-1\nhealth-timeout: 2.50\n"
        "backoff: .5\nbackoff-max: 1E2\nregister-timeout: 0.0\n"
    )
    settings = load_setup(tmp_path, KERNEL, INSTALLED).settings_for("bitbucket")
    assert settings.supervision == Supervision(
        startsecs=0.0,
        health_interval=0.1,
        health_timeout=2.5,
        backoff=0.5,
        backoff_max=100.0,
        register_timeout=0.0,
    )
