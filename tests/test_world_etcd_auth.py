"""A world kept in an etcd with authentication on (``etcd://USER@HOST:PORT`` and
``$KOS_WORLD_PASSWORD``): the user may read and write the world's prefix only; a wrong
password, a missing user or a prefix outside the user's range stop a joining kernel
with one line; the auth token expiring (etcd's ``--auth-token-ttl``) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos_core.testing import EtcdProcess, require_etcd, wait_for
from kos_helpers import assert_one_line_error
from world_helpers import World

#: seconds etcd keeps an auth token after its last use: shorter than the kernels'
#: keep-alive interval, so every renewal meets an expired token
TOKEN_TTL = 1
PASSWORD = "kos-secret"


@pytest.fixture
def auth_world(tmp_path: Path) -> Iterator[World]:
    """Kernels joining as user ``kos``, allowed to read and write ``/kos/`` only."""
    require_etcd()
    etcd = EtcdProcess(tmp_path / "etcd-data", options=[f"--auth-token-ttl={TOKEN_TTL}"])
    etcd.start()
    try:
        etcd.ctl("user", "add", "root:root-secret")
        etcd.ctl("role", "add", "kos")
        etcd.ctl("role", "grant-permission", "kos", "--prefix=true", "readwrite", "/kos/")
        etcd.ctl("user", "add", f"kos:{PASSWORD}")
        etcd.ctl("user", "grant-role", "kos", "kos")
        etcd.ctl("auth", "enable")
        (tmp_path / "world").mkdir()
        world = World(etcd, tmp_path / "world", f"etcd://kos@{etcd.endpoint}", PASSWORD)
        try:
            yield world
        finally:
            world.stop()
    finally:
        etcd.kill()


def test_kernels_join_export_and_outlive_their_auth_tokens(auth_world: World) -> None:
    auth_world.start("A")
    auth_world.start("B", setup="[bitbucket]\nexport: no\n")
    auth_world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: auth_world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "B to see A")
    etcd = auth_world.etcd_client()
    record = etcd.get("/kos/kernels/A")
    assert record is not None
    joined = time.monotonic()

    def renewed_past_token_expiry() -> bool:
        left = int(etcd.call("kv/lease/timetolive", {"ID": record.lease}).get("TTL", -1))
        return time.monotonic() - joined > 4 * TOKEN_TTL and left >= 5

    wait_for(renewed_past_token_expiry, 15, "A to renew its lease with a new token")
    auth_world.start("C")  # the watches of A and B, and C's join, after tokens expired
    auth_world.wait_plugin("C", "bitbucket", ["bitbucket"])
    wait_for(lambda: auth_world.names_seen_by("B") == ["A", "B", "C"], 10, "B to see C")
    again = etcd.get("/kos/kernels/A")
    assert again is not None and again.lease == record.lease  # never lost, never rejoined
    with auth_world.client("B") as kos:
        kos.lookup("world/C/bitbucket").Set("k", b"v")
    for name in ("A", "B"):
        log = auth_world.kernels[name].log()
        assert "invalid auth token" not in log and "unreachable" not in log, log


def test_a_wrong_password_or_no_user_stops_a_joining_kernel_with_one_line(
    auth_world: World,
) -> None:
    url = auth_world.url
    wrong = auth_world.join_refused("C", url, password="not-it")
    assert_one_line_error(wrong, 1, "authentication failed", "user 'kos'", "$KOS_WORLD_PASSWORD")
    anonymous = auth_world.join_refused("D", f"etcd://{auth_world.etcd.endpoint}")
    assert_one_line_error(anonymous, 1, "user name is empty", "etcd://USER@")
    elsewhere = auth_world.join_refused("E", f"{url}?prefix=/other/", password=PASSWORD)
    assert_one_line_error(elsewhere, 1, "permission denied", "may not use the prefix /other/")
