"""Bad plugin setup files: ``kos run`` refuses them with the file and line, and starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import kos_core
from kos_core.testing import KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error, connection_file
from kos_plugins_bitbucket import BucketFull

# A plugin defined by a script that leaves a mark when it runs: the proof that a
# refused setup file started no plugin at all (the control test shows it does run).
MARKER_SECTION = "[marker]\nfile: marker.py\nrun-at-boot: 1\n\n"  # lines 1-4


def write_marker(config_dir: Path, mark: Path) -> None:
    (config_dir / "marker.py").write_text(
        f"from pathlib import Path\nPath({str(mark)!r}).write_text('ran')\n"
    )


CASES = {
    "missing bracket": ("[bitbucket\nrun-at-boot: 1\n", 5, 'section header is missing "]"'),
    "unknown reference": (
        "[bitbucket]\nrun-at-boot: 1\nargs: --capacity %(size)s\n",
        7,
        'bad interpolation in "args"',
    ),
    "bare percent": ("[bitbucket]\nargs: --capacity 100%\n", 6, "bad interpolation"),
    "unknown plugin": ("[bitbukket]\nrun-at-boot: 1\n", 5, 'unknown plugin "bitbukket"'),
    "bad run-at-boot": ("[bitbucket]\nrun-at-boot: maybe\n", 6, "bad value for run-at-boot"),
    "unclosed quote in args": ("[bitbucket]\nargs: --name 'big\n", 6, "bad value for args"),
    "line that is not key: value": ("[bitbucket]\nrun-at-boot 1\n", 6, "not"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_setup_file_is_refused(kos_env: KosEnv, cli: Cli, tmp_path: Path, case: str) -> None:
    text, line, message = CASES[case]
    mark = tmp_path / "marker.ran"
    write_marker(kos_env.config_dir, mark)
    path = kos_env.write_setup(MARKER_SECTION + text)

    result = cli("run", timeout=20)
    assert_one_line_error(result, 2, f"{path}:{line}:", message)
    assert result.err_lines[0].startswith("kos: error: ")
    # nothing was started
    assert not mark.exists()
    assert not connection_file(kos_env).exists()
    assert not (kos_env.state_dir / kos_env.kernel / "plugins").exists()
    # `kos plugins` reads the same files and says the same
    assert_one_line_error(cli("plugins"), 2, f"{path}:{line}:", message)


def test_error_in_a_later_layer_names_that_file(kos_env: KosEnv, cli: Cli, tmp_path: Path) -> None:
    mark = tmp_path / "marker.ran"
    write_marker(kos_env.config_dir, mark)
    kos_env.write_setup(MARKER_SECTION + "[bitbucket]\nrun-at-boot: 1\n")
    local = kos_env.write_setup(
        "# machine settings\n[bitbucket]\nrun-at-boot: perhaps\n", "plugins.local"
    )
    result = cli("run", timeout=20)
    assert_one_line_error(result, 2, f"{local}:3:", "perhaps")
    assert not mark.exists()


def test_error_in_defaults_names_the_defaults_line(kos_env: KosEnv, cli: Cli) -> None:
    path = kos_env.write_setup(
        "[DEFAULTS]\n# shared\nrun-at-boot: sometimes\n\n[bitbucket]\nargs: -c 5\n"
    )
    assert_one_line_error(cli("run", timeout=20), 2, f"{path}:3:", "run-at-boot")


def test_config_option_names_the_directory_read(kos_env: KosEnv, cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other-config"
    other.mkdir()
    bad = other / "plugins"
    bad.write_text("[bitbucket]\nrun-at-boot: 1\n[bitbucket]\n")
    result = cli("run", "--config", str(other), timeout=20)
    assert_one_line_error(result, 2, f"{bad}:3:", "twice")
    assert not connection_file(kos_env).exists()


def test_config_dir_that_is_a_file(kos_env: KosEnv, cli: Cli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert_one_line_error(cli("run", "--config", str(not_a_dir), timeout=20), 2, str(not_a_dir))


def test_control_a_good_setup_file_runs_the_marker(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    mark = tmp_path / "marker.ran"
    write_marker(kos_env.config_dir, mark)
    kos_env.write_setup(
        MARKER_SECTION + "[bitbucket]\nrun-at-boot: 1\nargs: --capacity %(size)s\nsize: 64\n"
    )
    kernel = start_kernel()
    wait_for(mark.exists, 10, "the marker plugin to run")
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:  # args with %(size)s reached the plugin
        bb = kos.lookup("bitbucket")
        bb.Set("all", b"x" * (64 - len("all")))  # the name counts too
        with pytest.raises(BucketFull):
            bb.Set("more", b"x")
