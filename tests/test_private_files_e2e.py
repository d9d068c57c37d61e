"""Files a kernel keeps (DESIGN.md, Trust model → Files), tried as another local user would:
a symlinked or foreign runtime directory, a symlink flipped while a client connects,
and state and log files others could read.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kos_core
from kos_core.errors import KosError, UsageError
from kos_core.testing import KernelProcess, KosEnv, StartKernel, wait_for
from kos_helpers import Cli, assert_one_line_error, connection_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A private directory a symlink can point at."""
    path = tmp_path / "elsewhere"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.parametrize("command", [("run",), ("ls",)])
def test_a_symlinked_runtime_dir_is_refused(
    kos_env: KosEnv, cli: Cli, tmp_path: Path, elsewhere: Path, command: tuple[str, ...]
) -> None:
    link = tmp_path / "run-link"
    link.symlink_to(elsewhere)
    result = cli(*command, extra_env={"KOS_RUNTIME_DIR": str(link)})
    assert_one_line_error(result, 2, f"runtime directory {link} is a symlink", f"rm {link}")
    assert list(elsewhere.iterdir()) == []  # nothing was made through the link


@pytest.mark.parametrize("command", [("run",), ("ls",)])
def test_a_runtime_dir_of_another_mode_or_owner_is_refused(
    kos_env: KosEnv, cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    place = tmp_path / "run"
    place.mkdir(mode=0o700)
    place.chmod(0o755)
    env = {"KOS_RUNTIME_DIR": str(place)}
    result = cli(*command, extra_env=env)
    assert_one_line_error(result, 2, "has mode 0755, not 0700", f"chmod 700 {place}")
    if os.getuid() != 0:
        return
    place.chmod(0o700)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(place, nobody, -1)
    result = cli(*command, extra_env=env)
    assert_one_line_error(result, 2, f"belongs to uid {nobody}, not to you")
    assert list(place.iterdir()) == []


def test_a_kernel_refuses_a_symlinked_lock_file(kos_env: KosEnv, cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "locked-through-the-link"
    (kos_env.runtime_dir / f"{kos_env.kernel}.lock").symlink_to(target)
    result = cli("run")
    assert_one_line_error(result, 2, f"{kos_env.kernel}.lock is a symlink")
    assert not target.exists()
    assert not connection_file(kos_env).exists()


class Listener:
    """An attacker's Unix socket: counts whoever connects to it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path = path
        self.sock.bind(str(path))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(elsewhere: Path) -> Iterator[Listener]:
    attacker = Listener(elsewhere / "a.sock")
    try:
        yield attacker
    finally:
        attacker.close()


_FLIPPER = """
import os, sys
path, first, second = sys.argv[1:]
while True:
    for target in (first, second):
        os.symlink(target, path + ".next")
        os.replace(path + ".next", path)
"""


def test_a_symlink_flipped_while_clients_connect_never_leads_them_to_the_attacker(
    kos_env: KosEnv,
    bb_kernel: KernelProcess,
    tmp_path: Path,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The attacker's connection file names its own listener; another process flips the
    # symlink at the path the victims use between the real runtime directory and its own.
    theirs = listener.path.parent
    real = json.loads(connection_file(kos_env).read_text())
    fake = {**real, "address": f"kos+unix://{listener.path}", "secret": "attacker"}
    (theirs / connection_file(kos_env).name).write_text(json.dumps(fake))
    path = tmp_path / "flip"
    flipper = subprocess.Popen(
        [sys.executable, "-c", _FLIPPER, str(path), str(kos_env.runtime_dir), str(theirs)]
    )
    monkeypatch.setenv("KOS_RUNTIME_DIR", str(path))
    seen_through_the_link: set[str] = set()
    refused = 0
    try:
        wait_for(path.is_symlink, 10, "the attacker to plant the link")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (len(seen_through_the_link) < 2 or refused < 200):
            with contextlib.suppress(OSError, ValueError):  # what a path-following reader sees
                info = json.loads((path / connection_file(kos_env).name).read_text())
                seen_through_the_link.add(info["secret"])
            try:
                with kos_core.connect(kos_env.kernel) as kos:
                    kos.lookup("bitbucket")
            except UsageError as exc:
                assert "is a symlink" in str(exc), str(exc)
                refused += 1
            except KosError as exc:
                raise AssertionError(f"a victim got past the check: {exc}") from exc
    finally:
        flipper.kill()
        flipper.wait()
    assert "attacker" in seen_through_the_link  # the race was there to be lost
    assert refused >= 200
    assert listener.accepted == 0


def test_state_and_log_files_are_private(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    # left wide open by an older kos: the kernel tightens them
    state = kos_env.state_dir / kos_env.kernel
    (state / "logs").mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    old_log = state / "logs" / "bitbucket.log"
    old_log.write_text("an old traceback\n")
    old_log.chmod(0o644)
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    assert mode(state) == 0o700
    for directory in ("plugins", "plugins/bitbucket", "logs"):
        assert mode(state / directory) == 0o700, directory
    assert mode(old_log) == 0o600  # opened by the kernel when it started the plugin
    assert old_log.read_text().startswith("an old traceback\n")  # appended to, not replaced
