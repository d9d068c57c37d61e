"""A world kept in an etcd that speaks TLS and wants client certificates (``etcds://``):
kernels join and see each other through it; a client without a certificate is refused
by etcd, and an etcd whose certificate another authority signed is refused by kos.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kos_core.testing import EtcdProcess, EtcdTLS, require_etcd, wait_for
from kos_helpers import assert_one_line_error
from world_helpers import World


@pytest.fixture
def tls_world(tmp_path: Path) -> Iterator[World]:
    """Kernels of a world whose etcd serves TLS and requires a client certificate."""
    require_etcd()
    etcd = EtcdProcess(tmp_path / "etcd-data", tls=EtcdTLS.make(tmp_path / "etcd-tls"))
    (tmp_path / "world").mkdir()
    world = World(etcd.start(), tmp_path / "world")
    try:
        yield world
    finally:
        world.stop()
        etcd.kill()


def test_kernels_join_and_see_each_others_names_through_etcds(tls_world: World) -> None:
    assert tls_world.url.startswith("etcds://") and "cert=" in tls_world.url
    tls_world.start("A")
    tls_world.start("B", setup="[bitbucket]\nexport: no\n")
    tls_world.wait_plugin("A", "bitbucket", ["bitbucket"])
    wait_for(lambda: tls_world.names_seen_by("B", "world/A") == ["bitbucket"], 10, "B to see A")
    with tls_world.client("B") as kos:
        bucket = kos.lookup("world/A/bitbucket")
        bucket.Set("k", b"over etcds")
    with tls_world.client("A") as kos:
        assert kos.lookup("bitbucket").Get("k") == b"over etcds"
    assert tls_world.etcd_client().get("/kos/names/A/bitbucket") is not None


def test_a_kernel_without_a_client_certificate_is_refused_by_etcd(tls_world: World) -> None:
    tls = tls_world.etcd.tls
    assert tls is not None
    url = f"etcds://{tls_world.etcd.endpoint}{tls.query(client=False)}"
    refused = tls_world.join_refused("C", url)
    assert_one_line_error(refused, 1, "TLS to etcd at etcds://", "refused this client", "cert=")
    assert tls_world.etcd_client().get("/kos/kernels/C") is None


def test_an_etcd_certificate_of_another_authority_is_refused_by_kos(
    tls_world: World, tmp_path: Path
) -> None:
    tls = tls_world.etcd.tls
    assert tls is not None
    other = EtcdTLS.make(tmp_path / "other-tls")
    url = f"etcds://{tls_world.etcd.endpoint}?ca={other.ca}&cert={tls.client_cert}&key={tls.client_key}"
    # ca= is what counts, whatever requests' own variable says
    refused = tls_world.join_refused("C", url, environ={"REQUESTS_CA_BUNDLE": str(tls.ca)})
    assert_one_line_error(refused, 1, "TLS to etcd", "certificate is not accepted", str(other.ca))
    assert tls_world.etcd_client().get("/kos/kernels/C") is None
