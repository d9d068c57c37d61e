"""Names and places (kos_core._os.paths)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kos_core._os import paths
from kos_core.errors import UsageError

ENV = ("KOS_KERNEL", "KOS_RUNTIME_DIR", "XDG_RUNTIME_DIR", "KOS_STATE_DIR", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV:
        monkeypatch.delenv(key, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- kernel name ------------------------------------------------------------------


def test_kernel_name_explicit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOS_KERNEL", "fromenv")
    monkeypatch.setattr(socket, "gethostname", lambda: "host")
    assert paths.kernel_name("explicit") == "explicit"


def test_kernel_name_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOS_KERNEL", "fromenv")
    monkeypatch.setattr(socket, "gethostname", lambda: "host")
    assert paths.kernel_name() == "fromenv"
    assert paths.kernel_name(None) == "fromenv"


def test_kernel_name_from_short_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "box.example.org")
    assert paths.kernel_name() == "box"
    monkeypatch.setenv("KOS_KERNEL", "")
    assert paths.kernel_name() == "box"


def test_kernel_name_of_this_machine() -> None:
    short = socket.gethostname().split(".")[0] or "localhost"
    try:
        paths.check_name(short, "kernel")
    except UsageError:
        pytest.skip(f"this machine's host name {short!r} is not a valid kernel name")
    assert paths.kernel_name() == short


def test_kernel_name_without_a_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert paths.kernel_name() == "localhost"


BAD_NAMES = [
    "-dash",
    ".dot",
    "_under",
    "a b",
    "a/b",
    "a:b",
    "x" * 65,
    "caf\u00e9",
    "tab\t",
    "new\nline",
    "semi;colon",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_kernel_names_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with pytest.raises(UsageError, match="bad kernel name"):
        paths.kernel_name(name)
    monkeypatch.setenv("KOS_KERNEL", name)
    with pytest.raises(UsageError, match="bad kernel name"):
        paths.kernel_name()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_plugin_names_are_rejected(name: str) -> None:
    with pytest.raises(UsageError, match="bad plugin name"):
        paths.check_name(name, "plugin")


@pytest.mark.parametrize("name", ["k", "K9", "my-kernel", "a.b_c-d", "0", "x" * 64])
def test_good_names(name: str) -> None:
    assert paths.check_name(name, "kernel") == name
    assert paths.kernel_name(name) == name


def test_bad_host_name_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "_weird_host")
    with pytest.raises(UsageError):
        paths.kernel_name()


# -- runtime directory ----------------------------------------------------------------


@given(st.lists(st.sampled_from(["", "/", "//", "///", ".", "..", "a", "b.c", " "]), max_size=8))
def test_a_path_is_spelt_as_pathlib_spells_it(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert paths.spelt(text) == str(Path(text))
    assert paths.spelt(Path(text)) == str(Path(text))
    # and its directory, as pathlib has it
    assert paths._parent(paths.spelt(text)) == str(Path(text).parent)


def test_the_runtime_dir_is_spelt_as_pathlib_spells_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_RUNTIME_DIR", f"{tmp_path}//./rt/")
    assert paths.runtime_dir() == tmp_path / "rt"
    assert paths.connection_file("k1") == f"{tmp_path}/rt/k1.kernel.json"
    with pytest.raises(UsageError, match=f"^{tmp_path}/rt/k2.kernel.json is a symlink"):
        os.symlink(tmp_path / "elsewhere", tmp_path / "rt" / "k2.kernel.json")
        paths.read_private_file(paths.connection_file("k2"))


def test_runtime_dir_from_kos_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "rt" / "deeper"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = paths.runtime_dir()
    assert path == tmp_path / "rt" / "deeper"
    assert path.is_dir()
    assert mode(path) == 0o700
    assert not (tmp_path / "xdg").exists()


def test_runtime_dir_from_xdg_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "xdg").mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    path = paths.runtime_dir()
    assert path == tmp_path / "xdg" / "kos"
    assert mode(path) == 0o700


def test_runtime_dir_fallback_is_per_user_in_tmp() -> None:
    assert paths.runtime_dir(create=False) == Path(f"/tmp/kos-{os.getuid()}")


def test_runtime_dir_without_create_does_not_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "not-yet"))
    assert paths.runtime_dir(create=False) == tmp_path / "not-yet"
    assert not (tmp_path / "not-yet").exists()


def test_runtime_dir_of_another_mode_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "open"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(existing))
    with pytest.raises(UsageError, match=f"mode 0755, not 0700; fix it with: chmod 700 {existing}"):
        paths.runtime_dir()
    assert mode(existing) == 0o755  # refused, not changed behind the operator's back


def test_runtime_dir_is_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "masked"))
    old = os.umask(0)
    try:
        path = paths.runtime_dir()
    finally:
        os.umask(old)
    assert mode(path) == 0o700


def test_runtime_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "file"))
    with pytest.raises((OSError, UsageError)):
        paths.runtime_dir()


# -- state directory and connection file ---------------------------------------------------


def test_state_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.state_dir("k") == tmp_path / "home" / ".local" / "state" / "kos" / "k"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdgstate"))
    assert paths.state_dir("k") == tmp_path / "xdgstate" / "kos" / "k"
    monkeypatch.setenv("KOS_STATE_DIR", str(tmp_path / "state"))
    assert paths.state_dir("k") == tmp_path / "state" / "k"


def test_connection_file_is_in_the_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "rt"))
    assert paths.connection_file("k1") == str(tmp_path / "rt" / "k1.kernel.json")
    assert mode(tmp_path / "rt") == 0o700
