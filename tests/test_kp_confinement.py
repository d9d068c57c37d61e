"""Confinement by the operating system: each KP here tries to escape or to exhaust
its station and is stopped or refused, while the station and its plugins keep serving.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import kos_core
from kos_core.testing import KernelProcess, KosEnv, StartKernel, process_ended, wait_for
from kos_helpers import Cli, assert_one_line_error
from kp_helpers import reported, submit, wait_ended, write_kp

ESCAPES = """
import socket

def attempt(func):
    try:
        return ["ok", repr(func())]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

class Escaper:
    def __main__(self, kos):
        conn, state, outside, port, kernel = kos.args
        def udp():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                return s.sendto(b"x", ("127.0.0.1", int(port)))
        report(kos, "escapes", {
            "connection_file": attempt(lambda: open(conn).read()),
            "state_dir": attempt(lambda: os.listdir(state)),
            "passwd": attempt(lambda: open("/etc/passwd").read()),
            "write_outside": attempt(lambda: open(outside, "w").write("x")),
            "write_own": attempt(lambda: open("mine.txt", "w").write("mine")),
            "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", int(port)), 2)),
            "udp": attempt(udp),
            "signal_kernel": attempt(lambda: os.kill(int(kernel), 0)),
            "raise_cpu_limit": attempt(lambda: __import__("resource").setrlimit(0, (-1, -1))),
        })
"""

BOMB = """
class Bomb:
    def __main__(self, kos):
        children = []
        try:
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                children.append(pid)
            refused = None
        except OSError as exc:
            refused = exc.strerror
        report(kos, "bomb", {"forked": children, "refused": refused})
        time.sleep(60)
"""

HOGS = """
class Memory:
    def __main__(self, kos):
        try:
            hog = bytearray(512 * 1024 * 1024)
            report(kos, "memory", ["allocated", len(hog)])
        except MemoryError:
            report(kos, "memory", ["MemoryError", 0])

class Spin:
    def __main__(self, kos):
        while True:
            pass

class Sleeper:
    def __main__(self, kos):
        time.sleep(600)
"""


def still_serving(kernel: KernelProcess) -> None:
    """The station and its bitbucket answer as before."""
    row = kernel.plugin_row("bitbucket")
    assert row is not None and row[1] == "running" and row[6] == 0  # never restarted
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("after", b"still serving")
        assert bb.Get("after") == b"still serving"


def test_a_kp_reads_writes_and_connects_only_what_is_its_own(
    station: KernelProcess, tmp_path: Path
) -> None:
    env = station.env
    outside = tmp_path / "outside.txt"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        args = (
            str(env.runtime_dir / f"{env.kernel}.kernel.json"),
            str(env.state_dir / env.kernel),
            str(outside),
            str(port),
            str(station.pid),
        )
        with kos_core.connect() as kos:
            submit(kos, write_kp(tmp_path, "escaper", ESCAPES), "Escaper", *args)
            report = reported(kos, "escapes")
        listener.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached it
    for attempt in ("connection_file", "state_dir", "passwd", "write_outside"):
        assert report[attempt][0] == "PermissionError", (attempt, report[attempt])
    assert not outside.exists()
    assert report["write_own"] == ["ok", "4"]
    assert report["tcp"][0] == "PermissionError"  # Landlock: no TCP connect
    assert report["udp"][0] == "OSError"  # its network namespace has no interface
    assert report["signal_kernel"][0] == "PermissionError"
    assert report["raise_cpu_limit"][0] in ("ValueError", "PermissionError")
    still_serving(station)


def test_a_process_bomb_is_refused_and_cleared(station: KernelProcess, tmp_path: Path) -> None:
    with kos_core.connect() as kos:
        kp_id = submit(kos, write_kp(tmp_path, "bomb", BOMB), "Bomb")
        report = reported(kos, "bomb")
        assert report["refused"] == "Resource temporarily unavailable"
        assert 0 < len(report["forked"]) < 32  # the KP's threads count too
        kos.kernel.KillKP(kp_id)
    wait_for(lambda: all(process_ended(pid) for pid in report["forked"]), 5)
    still_serving(station)


def test_memory_cpu_and_wall_clock_limits_hold(station: KernelProcess, tmp_path: Path) -> None:
    path = write_kp(tmp_path, "hogs", HOGS)
    with kos_core.connect() as kos:
        memory = submit(kos, path, "Memory", limits="mem=128")
        spin = submit(kos, path, "Spin", limits="cpu=1")
        sleeper = submit(kos, path, "Sleeper", limits="wall=1")
        assert reported(kos, "memory") == ["MemoryError", 0]
        assert wait_ended(kos, memory)["last_exit"] == "exit status 0"
        ended = wait_ended(kos, spin)
        assert ended["last_exit"] == "CPU limit (1 s) reached"
        assert 0.75 <= ended["cpu"] < 3.0  # the limit, as tick-grained accounting sees it
        assert wait_ended(kos, sleeper)["last_exit"] == "wall-clock limit (1 s) reached"
    still_serving(station)


def test_a_station_that_cannot_confine_refuses_unless_told(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli, tmp_path: Path
) -> None:
    kos_env.write_setup("[kp-access]\nlookup: bitbucket\nlandlock: 99\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    path = write_kp(
        tmp_path, "free", "class Free:\n    def __main__(self, kos):\n        time.sleep(60)\n"
    )
    assert_one_line_error(
        cli("kp", "submit", str(path)),
        1,
        "cannot confine a KP",
        "older than the 99 this station requires",
        "--unconfined",
    )
    result = cli("kp", "submit", "--unconfined", str(path))
    assert result.returncode == 0, str(result)
    kp_id = result.stdout.strip()
    wait_for(lambda: f"KP {kp_id} (Free) runs UNCONFINED" in kernel.log(), 5)
    log = kernel.env.state_dir / kernel.env.kernel / "logs" / f"kp-{kp_id}.log"
    assert "UNCONFINED" in wait_for(log.read_text, 5)
