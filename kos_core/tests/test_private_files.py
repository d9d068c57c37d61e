"""Private files (kos_core._os.paths) and what error replies may say (kos_core._rpc.redact)."""

from __future__ import annotations

import os
import pwd
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coretest_util import echo_server
from kos_core import _rpc
from kos_core._os import paths
from kos_core._rpc.redact import public_message, value_name
from kos_core.errors import RemoteError, UsageError
from toyapi import Echo, EchoImpl

ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$KOS_RUNTIME_DIR`` for this test (not made yet)."""
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- the runtime directory -------------------------------------------------------------


def test_a_symlinked_runtime_dir_is_refused(place: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    place.symlink_to(target)
    with pytest.raises(UsageError, match=f"runtime directory {place} is a symlink; remove it"):
        paths.runtime_dir()
    with pytest.raises(UsageError, match="is a symlink"):
        paths.write_private_file(place / "k.kernel.json", b"{}")
    assert list(target.iterdir()) == []


def test_a_runtime_dir_of_another_user_is_refused(place: Path) -> None:
    place.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody").pw_uid
    if os.getuid() != 0:
        pytest.skip("only root can give a directory away")
    os.chown(place, nobody, -1)
    with pytest.raises(UsageError, match=f"belongs to uid {nobody}, not to you"):
        paths.runtime_dir()


def test_a_runtime_dir_in_a_parent_others_may_change_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename our directory away and put theirs in its place
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(shared / "kos"))
    with pytest.raises(
        UsageError,
        match=f"parent {shared} may be changed by others; fix it with: chmod go-w {shared}",
    ):
        paths.runtime_dir()
    shared.chmod(0o1777)  # sticky, as /tmp: entries can be renamed by their owners only
    assert mode(paths.runtime_dir()) == 0o700


def test_a_runtime_dir_made_by_kos_is_0700_whatever_the_umask(place: Path) -> None:
    old = os.umask(0o277)  # would leave r-x------
    try:
        paths.runtime_dir()
    finally:
        os.umask(old)
    assert mode(place) == 0o700


# -- files in it ------------------------------------------------------------------------


def test_private_file_is_written_0600_and_read_back(place: Path) -> None:
    path = paths.runtime_dir() / "k.kernel.json"
    paths.write_private_file(path, b'{"a": 1}')
    paths.write_private_file(path, b'{"a": 2}')  # replaced in place
    assert mode(path) == 0o600
    assert paths.read_private_file(path) == b'{"a": 2}'
    assert sorted(p.name for p in place.iterdir()) == ["k.kernel.json"]  # no temporary left


def test_a_symlink_planted_at_the_temporary_name_is_not_followed(
    place: Path, tmp_path: Path
) -> None:
    path = paths.runtime_dir() / "k.kernel.json"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    missing = tmp_path / "would-be-made"
    for target in (victim, missing):
        (place / f"k.kernel.json.tmp{os.getpid()}").symlink_to(target)
        paths.write_private_file(path, b"secret")
        assert victim.read_bytes() == b"precious"
        assert not missing.exists()
        assert path.read_bytes() == b"secret"
        assert not path.is_symlink()


def test_a_symlinked_connection_file_is_not_read(place: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"address": "kos+unix:///elsewhere.sock", "secret": "x"}')
    path = paths.runtime_dir() / "k.kernel.json"
    path.symlink_to(theirs)
    with pytest.raises(UsageError, match=f"{path} is a symlink"):
        paths.read_private_file(path)


def test_a_fifo_at_the_connection_file_does_not_hang_its_reader(place: Path) -> None:
    path = paths.runtime_dir() / "k.kernel.json"
    os.mkfifo(path, 0o600)
    with pytest.raises(UsageError, match="is not a regular file"):
        paths.read_private_file(path)


def test_a_missing_private_file(place: Path) -> None:
    with pytest.raises(FileNotFoundError):
        paths.read_private_file(paths.runtime_dir() / "none.kernel.json")


def test_a_symlinked_lock_file_is_refused(place: Path, tmp_path: Path) -> None:
    lock = paths.runtime_dir() / "k.lock"
    lock.symlink_to(tmp_path / "made-through-the-link")
    with pytest.raises(UsageError, match="is a symlink"):
        paths.open_private_file(lock, os.O_RDWR | os.O_CREAT)
    assert not (tmp_path / "made-through-the-link").exists()


def test_private_dirs_are_made_and_tightened(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    deep = paths.make_private_dir(old / "a" / "b")
    paths.make_private_dir(old)
    assert [mode(p) for p in (old, old / "a", deep)] == [0o700, 0o700, 0o700]


# -- no internals in replies ------------------------------------------------------------


class Secretive:
    def method(self) -> None:
        """A method whose repr names this class and its address."""


def test_public_message_drops_addresses_and_internal_names() -> None:
    text = f"got {Secretive().method!r} and {({}).get!r}; also {object()!r} at {id(Secretive):#x}"
    cleaned = public_message(text)
    assert not ADDRESS.search(cleaned), cleaned
    assert "<bound method Secretive.method of <Secretive object>>" in cleaned
    assert "<built-in method get of dict object>" in cleaned
    assert public_message("status 0x1f, plain words") == "status 0x1f, plain words"


def test_value_name_never_calls_repr() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("repr called")

    assert value_name(Loud()) == "a Loud"
    assert value_name(object()) == "an object"
    assert value_name("Get") == "'Get'"
    assert value_name(7) == "7"
    assert value_name("x" * 1000).endswith("… (1000 long)")


@pytest.fixture
def echo_session() -> Iterator[_rpc.ServerSession]:
    yield _rpc.ServerSession(EchoImpl(), Echo)


@pytest.mark.parametrize(
    ("handle", "method"),
    [(object(), "Str"), (0, ({}).get), (0, Secretive().method), (threading.Lock(), "Str")],
)
def test_refusals_name_no_object_of_the_server(
    echo_session: _rpc.ServerSession, handle: object, method: object
) -> None:
    status, (kind, message) = echo_session.dispatch(handle, method, ())  # type: ignore[arg-type]
    assert status == _rpc.FAULT
    assert kind in ("NoSuchObject", "NoSuchMethod")
    assert not ADDRESS.search(message), message
    assert "at 0x" not in message


def test_a_service_error_with_a_repr_reaches_the_client_without_its_address() -> None:
    leaky = f"cannot use {({}).get!r} of {Secretive()!r}"
    assert ADDRESS.search(leaky)
    with echo_server() as server:
        echo = server.proxy()
        try:
            for method in (echo.Crash, echo.Undeclared):  # any exception; an undeclared KosError
                with pytest.raises(RemoteError) as info:
                    method(leaky)
                assert not ADDRESS.search(str(info.value)), str(info.value)
                assert "<built-in method get of dict object>" in info.value.message
        finally:
            link = _rpc.connection_of(echo)
            assert link is not None
            link.close()
