"""The ``etcd`` fixture: a real etcd on loopback that keeps its ports across restarts."""

from __future__ import annotations

import base64
import json
import urllib.request

from kos_core.testing import EtcdProcess


def _post(server: EtcdProcess, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{server.client_url}/v3/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        result = json.loads(reply.read())
    assert isinstance(result, dict)
    return result


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _get(server: EtcdProcess, key: str) -> str | None:
    kvs = _post(server, "kv/range", {"key": _b64(key)}).get("kvs")
    if not kvs:
        return None
    assert isinstance(kvs, list)
    return base64.b64decode(kvs[0]["value"]).decode()


def test_etcd_keeps_data_and_ports_across_a_restart_and_loses_it_when_wiped(
    etcd: EtcdProcess,
) -> None:
    assert etcd.url == f"etcd://127.0.0.1:{etcd.port}"
    _post(etcd, "kv/put", {"key": _b64("k"), "value": _b64("v")})
    assert _get(etcd, "k") == "v"
    etcd.stop()
    assert not etcd.healthy()
    etcd.start()
    assert _get(etcd, "k") == "v"
    etcd.stop()
    etcd.wipe()
    etcd.start()
    assert _get(etcd, "k") is None
