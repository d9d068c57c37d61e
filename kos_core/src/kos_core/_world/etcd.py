"""The etcd cluster a world is kept in: its address, and the few calls kos makes.

Unary calls (key-value, leases, transactions) go through ``etcd3gw``, a maintained
etcd v3 client over etcd's JSON gateway. The watch stream is read here, line by
line, because kos must see what ``etcd3gw``'s watcher drops: the revision a watch
starts from, and the responses that cancel a watch (compaction). Every failure to
reach etcd, or a reply that is not what etcd sends, becomes
:class:`~kos_core.errors.WorldUnavailable`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kos_core._world.etcd_errors import (
    INVALID_TOKEN,
    EtcdDenied,
    LeaseLost,
    detail,
    refusal,
    unreachable,
)
from kos_core._world.url import WorldURL
from kos_core.errors import WorldUnavailable

#: seconds a unary call to etcd may take
CALL_TIMEOUT = 2.0


def encode(data: str | bytes) -> str:
    """Etcd's JSON gateway carries keys and values in base64."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def decode(data: str) -> bytes:
    """The bytes of a base64 key or value from etcd."""
    return base64.b64decode(data)


def prefix_end(prefix: str) -> str:
    """The end of the key range of everything under ``prefix``."""
    raw = prefix.encode()
    return encode(raw[:-1] + bytes([raw[-1] + 1]))


@dataclass(frozen=True)
class KeyValue:
    """One key in etcd, as a range or a watch event reports it."""

    key: str
    value: bytes
    lease: int
    create_revision: int
    mod_revision: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        """From the gateway's JSON (numbers come as strings; zero fields are absent)."""
        return cls(
            decode(kv["key"]).decode("utf-8", "replace"),
            decode(kv.get("value", "")),
            int(kv.get("lease", 0)),
            int(kv.get("create_revision", 0)),
            int(kv.get("mod_revision", 0)),
        )


@dataclass(frozen=True)
class WatchBatch:
    """One response of a watch stream: events (``(deleted, kv)``), or the end of the
    watch (``cancelled``; ``compacted_to`` > 0 when history was compacted away, else
    etcd's ``reason``: an auth token it no longer knows...).
    """

    revision: int
    events: list[tuple[bool, KeyValue]]
    cancelled: bool = False
    compacted_to: int = 0
    reason: str = ""


class Etcd:
    """Calls to one etcd cluster, tried endpoint by endpoint; safe from any thread."""

    def __init__(self, url: WorldURL, timeout: float = CALL_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._current = 0  # the endpoint that answered last
        self._token: str | None = None  # etcd's auth token for the user, once given one

    def _client(self, index: int) -> Any:
        import etcd3gw

        clients: dict[int, Any] = self._local.__dict__.setdefault("clients", {})
        if index not in clients:
            host, port = self.url.endpoints[index]
            client = etcd3gw.Etcd3Client(
                host=host,
                port=port,
                protocol="https" if self.url.tls else "http",
                ca_cert=self.url.ca,
                cert_key=self.url.key,
                cert_cert=self.url.cert,
                timeout=self.timeout,
                api_path="/v3/",  # etcd >= 3.4
            )
            # Exactly the TLS of the world URL: requests would otherwise let
            # $REQUESTS_CA_BUNDLE replace ca=, a proxy carry the traffic, ~/.netrc the
            # Authorization header.
            client.session.trust_env = False
            if self.url.cert is not None and self.url.key is None:
                client.session.cert = self.url.cert  # one file: certificate and key
            clients[index] = client
        return clients[index]

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the gateway's ``path`` (``kv/range``...) at the first
        endpoint that answers; its JSON reply.
        """
        import etcd3gw.exceptions as gw

        count = len(self.url.endpoints)
        last: Exception | None = None
        for attempt in range(count + 1):
            index = (self._current + attempt) % count
            try:
                reply = self._post(self._client(index), path, body)
            except (gw.ConnectionFailedError, gw.ConnectionTimeoutError) as exc:
                last = exc
                continue
            except gw.Etcd3Exception as exc:
                text = detail(exc)
                if "lease not found" in text:
                    raise LeaseLost(f"etcd no longer has the lease ({path})") from None
                raise refusal(self.url, path, text) from None
            except ValueError as exc:  # not JSON
                raise WorldUnavailable(f"etcd sent a reply kos cannot read: {exc}") from None
            self._current = index
            if not isinstance(reply, dict):
                raise WorldUnavailable(f"etcd sent a reply kos cannot read to {path}")
            return reply
        raise unreachable(self.url, last)

    def _post(self, client: Any, path: str, body: dict[str, Any]) -> Any:
        """One call to one endpoint, as the world's user if there is one: a token etcd
        no longer knows (it expires ``--auth-token-ttl`` after its last use) is
        replaced once.
        """
        import etcd3gw.exceptions as gw

        token = self._authorize(client)
        try:
            return client.post(client.get_url(path), json=body)
        except gw.Etcd3Exception as exc:
            if token is None or INVALID_TOKEN not in detail(exc):
                raise
        with self._lock:
            if self._token == token:
                self._token = None
        self._authorize(client)
        return client.post(client.get_url(path), json=body)

    def _authorize(self, client: Any) -> str | None:
        """The user's token (asked for if there is none) in ``client``'s headers."""
        import etcd3gw.exceptions as gw

        if not self.url.user:
            return None
        with self._lock:
            token = self._token
        if token is None:
            try:
                reply = client.post(
                    client.get_url("auth/authenticate"),
                    json={"name": self.url.user, "password": self.url.password or ""},
                    headers={"Authorization": None},  # an expired token would be refused
                )
            except (gw.ConnectionFailedError, gw.ConnectionTimeoutError):
                raise
            except gw.Etcd3Exception as exc:
                raise refusal(self.url, "auth/authenticate", detail(exc)) from None
            token = str(reply.get("token", "")) if isinstance(reply, dict) else ""
            if not token:
                raise EtcdDenied(f"etcd gave user {self.url.user!r} no token")
            with self._lock:
                self._token = token
        client.session.headers["Authorization"] = token
        return token

    # -- leases ---------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        return int(self.call("lease/grant", {"TTL": ttl, "ID": 0})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew ``lease``; its new TTL, or 0 if etcd no longer has it."""
        result = self.call("lease/keepalive", {"ID": lease}).get("result", {})
        return max(int(result.get("TTL", 0)), 0)

    def revoke(self, lease: int) -> None:
        """End ``lease`` now: every key it holds is deleted."""
        self.call("lease/revoke", {"ID": lease})

    # -- keys -----------------------------------------------------------------------

    def create(self, key: str, value: bytes, lease: int) -> KeyValue | None:
        """Put ``key`` only if it does not exist (one transaction). ``None`` if it was
        created, else the key as it is.
        """
        reply = self.call(
            "kv/txn",
            {
                "compare": [
                    {
                        "key": encode(key),
                        "result": "EQUAL",
                        "target": "CREATE",
                        "create_revision": 0,
                    }
                ],
                "success": [
                    {"request_put": {"key": encode(key), "value": encode(value), "lease": lease}}
                ],
                "failure": [{"request_range": {"key": encode(key)}}],
            },
        )
        if reply.get("succeeded"):
            return None
        for response in reply.get("responses", []):
            for kv in response.get("response_range", {}).get("kvs", []):
                return KeyValue.from_json(kv)
        return self.create(key, value, lease)  # deleted in between: try again

    def put(self, key: str, value: bytes, lease: int) -> None:
        """Put ``key`` held by ``lease``."""
        self.call("kv/put", {"key": encode(key), "value": encode(value), "lease": lease})

    def delete(self, key: str) -> None:
        """Delete ``key``."""
        self.call("kv/deleterange", {"key": encode(key)})

    def get(self, key: str) -> KeyValue | None:
        """The key, or ``None``."""
        kvs = self.call("kv/range", {"key": encode(key)}).get("kvs", [])
        return KeyValue.from_json(kvs[0]) if kvs else None

    def range_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` and the store's revision they were read at."""
        reply = self.call("kv/range", {"key": encode(prefix), "range_end": prefix_end(prefix)})
        revision = int(reply.get("header", {}).get("revision", 0))
        return revision, [KeyValue.from_json(kv) for kv in reply.get("kvs", [])]

    def newest(self, prefix: str) -> tuple[int, int]:
        """The newest modification under ``prefix`` (its revision, 0 if empty) and how
        many keys there are, in one small read.
        """
        body = {"key": encode(prefix), "range_end": prefix_end(prefix), "limit": 1}
        body.update(sort_order="DESCEND", sort_target="MOD", keys_only=True)
        reply = self.call("kv/range", body)
        kvs = reply.get("kvs", [])
        return (int(kvs[0].get("mod_revision", 0)) if kvs else 0), int(reply.get("count", 0))

    def watch(self, prefix: str, start_revision: int) -> Watch:
        """A watch of everything under ``prefix`` from ``start_revision`` on."""
        return Watch(self, prefix, start_revision)

    def _stream(self, path: str, body: dict[str, Any]) -> Any:
        import etcd3gw.exceptions as gw
        import requests

        count = len(self.url.endpoints)
        last: Exception | None = None
        for attempt in range(count):
            index = (self._current + attempt) % count
            client = self._client(index)
            try:
                self._authorize(client)
                response = client.session.post(
                    client.get_url(path), json=body, stream=True, timeout=(self.timeout, None)
                )
            except (requests.RequestException, gw.ConnectionFailedError) as exc:
                last = exc
                continue
            except gw.Etcd3Exception as exc:
                raise refusal(self.url, path, detail(exc)) from None
            if response.status_code != 200:
                response.close()
                raise WorldUnavailable(f"etcd refused a watch: HTTP {response.status_code}")
            return response
        raise unreachable(self.url, last)


class Watch:
    """One watch stream; iterate for :class:`WatchBatch` es, :meth:`close` from any
    thread to end it.
    """

    def __init__(self, etcd: Etcd, prefix: str, start_revision: int) -> None:
        request = {
            "create_request": {
                "key": encode(prefix),
                "range_end": prefix_end(prefix),
                "start_revision": start_revision,
            }
        }
        self._response = etcd._stream("watch", request)
        self._closed = False

    def __iter__(self) -> Iterator[WatchBatch]:
        import requests

        try:
            for line in self._response.iter_lines(chunk_size=None):
                if not line.strip():
                    continue
                yield _batch(line)
        except (requests.RequestException, OSError, AttributeError) as exc:
            if not self._closed:
                raise WorldUnavailable(f"the watch of etcd broke: {detail(exc)}") from None
        if not self._closed:
            raise WorldUnavailable("etcd ended the watch stream")

    def close(self) -> None:
        """End the stream (the iterating thread sees its end)."""
        self._closed = True
        with contextlib.suppress(Exception):
            fd = self._response.raw._fp.fileno()
            with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()


def _batch(line: bytes) -> WatchBatch:
    try:
        result = json.loads(line)["result"]
        header = result.get("header", {})
        events = [
            (event.get("type") == "DELETE", KeyValue.from_json(event["kv"]))
            for event in result.get("events", [])
        ]
        return WatchBatch(
            int(header.get("revision", 0)),
            events,
            cancelled=bool(result.get("canceled")),
            compacted_to=int(result.get("compact_revision", 0)),
            reason=str(result.get("cancel_reason", ""))[:200],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WorldUnavailable(f"etcd sent a watch response kos cannot read: {exc}") from None
