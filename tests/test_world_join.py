"""Joining a world: the kernel record under a lease, unique names, the TLS material."""

from __future__ import annotations

import json
import os
import socket

from kos_core.testing import KernelProcess, running_kernel, wait_for
from kos_helpers import CLI, Cli, assert_one_line_error, run
from world_helpers import World


def test_kernels_join_with_a_record_held_by_a_short_lease(world: World) -> None:
    world.start("A")
    world.start("B")
    etcd = world.etcd_client()
    kv = etcd.get("/kos/kernels/A")
    assert kv is not None
    record = json.loads(kv.value)
    assert record["name"] == "A"
    assert record["address"].startswith("127.0.0.2:")
    assert record["host"] == socket.gethostname()
    granted = etcd.call("kv/lease/timetolive", {"ID": kv.lease})
    assert 0 < int(granted["grantedTTL"]) <= 10
    assert wait_for(lambda: world.names_seen_by("B") == ["A", "B"], 10, "B to list A and B")
    listed = world.cli("A", "ls", "world")
    assert listed.returncode == 0, listed
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["A/", "B/"]


def test_a_second_kernel_of_a_taken_name_exits_2_naming_the_holders_host(world: World) -> None:
    holder = world.start("A")
    env = world.env("A")  # a place of its own: another host's kernel of the same name
    args = ["--world", world.etcd.url, "--listen", "127.0.0.9:0", "--tls-dir", str(world.tls_dir)]
    with running_kernel(env, *args, ready=False, log_path=world.base / "second.log") as second:
        assert second.process.wait(30) == 2
    lines = [line for line in second.log().splitlines() if line.startswith("kos: error:")]
    assert len(lines) == 1, second.log()
    assert "kernel name 'A' is taken" in lines[0]
    assert socket.gethostname() in lines[0] and "127.0.0.2:" in lines[0]
    assert "Traceback" not in second.log()
    assert holder.process.poll() is None  # the holder is untouched


def test_a_kernel_without_its_world_tls_files_is_refused_naming_the_command(
    world: World,
) -> None:
    env = world.env("C")
    empty = world.base / "empty"
    empty.mkdir()
    environ = {**os.environ, **env.environ(), "KOS_WORLD": world.etcd.url}
    base = [*CLI, "run", "-n", "C", "--listen", "127.0.0.3:0"]
    no_ca = run([*base, "--tls-dir", str(empty)], env=environ, cwd=world.base, timeout=30)
    assert_one_line_error(no_ca, 2, "kos world ca init", str(empty))
    (empty / "ca.pem").write_text((world.tls_dir / "ca.pem").read_text())
    no_cert = run([*base, "--tls-dir", str(empty)], env=environ, cwd=world.base, timeout=30)
    assert_one_line_error(no_cert, 2, "kos world ca issue C", "C.pem")


def test_a_kernel_in_a_world_needs_a_tcp_address(world: World) -> None:
    env = world.env("D")
    environ = {**os.environ, **env.environ()}
    command = [*CLI, "run", "-n", "D", "--world", world.etcd.url, "--tls-dir", str(world.tls_dir)]
    result = run(command, env=environ, cwd=world.base, timeout=30)
    assert_one_line_error(result, 2, "--listen")
    bad = run([*CLI, "run", "--world", "http://x:1"], env=environ, cwd=world.base, timeout=30)
    assert_one_line_error(bad, 2, "etcd://HOST:PORT")


def test_a_kernel_leaves_at_once_when_stopped(world: World) -> None:
    kernel = world.start("A")
    etcd = world.etcd_client()
    assert etcd.get("/kos/kernels/A") is not None
    assert kernel.stop() == 0
    assert etcd.get("/kos/kernels/A") is None  # the lease was revoked, not left to expire


def test_kos_status_world_shows_every_kernel_its_host_address_uptime_and_exports(
    world: World,
) -> None:
    world.start("A")
    world.start("B", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "A's bitbucket")
    table = world.cli("B", "status", "--world")
    assert table.returncode == 0, table
    header, *rows = [line.split() for line in table.stdout.splitlines()]
    assert header == ["KERNEL", "HOST", "ADDRESS", "UPTIME", "EXPORTS"]
    assert [row[0] for row in rows] == ["A", "B"]
    assert rows[0][1] == socket.gethostname() and rows[0][2].startswith("127.0.0.2:")
    assert rows[0][4] == "bitbucket" and rows[1][4] == "-"
    data = json.loads(world.cli("B", "status", "--world", "--json").stdout)
    assert [k["kernel"] for k in data["world"]] == ["A", "B"]
    assert data["world"][0]["uptime"] >= 0 and data["world"][0]["services"] == ["bitbucket"]


def test_kos_status_world_of_a_kernel_alone_says_so(kos_kernel: KernelProcess, cli: Cli) -> None:
    result = cli("status", "--world")
    assert_one_line_error(result, 2, "is alone", "--world")
