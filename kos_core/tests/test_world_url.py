"""``--world URL``: etcd endpoints, TLS files, the prefix; bad URLs refused clearly."""

from __future__ import annotations

import pytest

from kos_core._world.url import WorldURL
from kos_core.errors import UsageError


def test_a_world_url_names_every_endpoint_and_defaults_to_the_kos_prefix() -> None:
    url = WorldURL.parse("etcd://127.0.0.1:2379,[::1]:2380")
    assert url.endpoints == (("127.0.0.1", 2379), ("::1", 2380))
    assert url.prefix == "/kos/" and not url.tls and url.loopback_only
    assert str(url) == "etcd://127.0.0.1:2379,::1:2380"


def test_etcds_takes_tls_files_a_user_and_a_prefix() -> None:
    url = WorldURL.parse(
        "etcds://kos@etcd1:2379?ca=/c.pem&cert=/k.pem&key=/k-key.pem&prefix=/w2/", "secret"
    )
    assert url.tls and (url.ca, url.cert, url.key) == ("/c.pem", "/k.pem", "/k-key.pem")
    assert (url.user, url.password, url.prefix) == ("kos", "secret", "/w2/")
    assert not url.loopback_only
    assert "secret" not in repr(url)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("http://h:1", "etcd://HOST:PORT"),
        ("etcd://h", "is not HOST:PORT"),
        ("etcd://h:99999", "is not HOST:PORT"),
        ("etcd://u:pw@h:1", "KOS_WORLD_PASSWORD"),
        ("etcd://h:1?prefix=kos", "start and end with '/'"),
        ("etcd://h:1?ca=/x", "etcds://"),
        ("etcd://h:1?bogus=1", "unknown option 'bogus'"),
        ("etcds://h:1?key=/k-key.pem", "key= needs cert="),
    ],
)
def test_a_bad_world_url_is_refused_saying_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        WorldURL.parse(text)
    assert fragment in str(caught.value)
