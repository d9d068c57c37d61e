"""The connection file (kos_core._net.connection_file): what the kernel writes is what
clients read, and a file that cannot be used says so.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kos_core import __version__
from kos_core._net import connection_file, wire
from kos_core._os import paths
from kos_core.errors import KernelUnreachable


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$KOS_RUNTIME_DIR`` for this test."""
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def test_what_is_written_is_read_back(place: Path) -> None:
    unix = wire.Address(path=str(place / "k1.sock"))
    connection_file.write("k1", address=unix, secret="s3cret", pid=4242)
    path = Path(paths.connection_file("k1"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(json.loads(path.read_text())) == [
        "kernel",
        "address",
        "pid",
        "protocol",
        "version",
        "secret",
    ]
    info = connection_file.read("k1")
    assert info == connection_file.ConnectionInfo(
        kernel="k1",
        address=str(unix),
        secret="s3cret",
        pid=4242,
        protocol=str(wire.PROTOCOL_VERSION),
        version=__version__,
    )


def test_a_kernel_on_tcp_writes_its_address_and_authority(place: Path) -> None:
    tcp = wire.Address(host="127.0.0.1", port=7000)
    connection_file.write(
        "k1", address=wire.Address(path="/x.sock"), secret="s", pid=1, tcp=tcp, ca="PEM"
    )
    info = connection_file.read("k1")
    assert info is not None
    assert (info.tcp, info.ca) == (str(tcp), "PEM")
    assert wire.Address.parse(info.tcp) == tcp


def test_no_file_is_none_and_remove_is_quiet(place: Path) -> None:
    assert connection_file.read("k1") is None
    connection_file.remove("k1")
    connection_file.write("k1", address=wire.Address(path="/x.sock"), secret="s", pid=1)
    connection_file.remove("k1")
    assert connection_file.read("k1") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the connection file"),
        ('{"address": "unix:/x.sock"}', "is damaged"),
        ('["address", "secret"]', "is damaged"),
    ],
)
def test_an_unusable_file_is_unreachable(place: Path, content: str, message: str) -> None:
    paths.write_private_file(paths.connection_file("k1"), content.encode())
    with pytest.raises(KernelUnreachable, match=message):
        connection_file.read("k1")


def test_a_pid_that_is_no_number_is_unknown(place: Path) -> None:
    data = {"address": "unix:/x.sock", "secret": "s", "pid": "abc"}
    paths.write_private_file(paths.connection_file("k1"), json.dumps(data).encode())
    info = connection_file.read("k1")
    assert info is not None and info.pid is None and info.pid_text == "?"
    assert info.kernel == "k1"
