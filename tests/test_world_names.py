"""World names: exported services published as world/<kernel>/<name>, looked up from
any kernel's cache and called directly over TCP+TLS.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from kos_core import _rpc
from kos_core.errors import KosError
from kos_core.testing import wait_for
from world_helpers import World

BODY = b"a body served on loopback, read through a requester on B " * 50
B_SETUP = "[bitbucket]\nexport: no\n\n[http]\nexport: yes\nallow-hosts: 127.0.0.1\n"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _address(proxy: object) -> str:
    link = _rpc.connection_of(proxy)
    assert link is not None
    return str(link.address)


def test_a_client_of_c_calls_a_bitbucket_on_a_and_a_requester_on_b(
    world: World, web: HTTPServer
) -> None:
    world.start("A")
    world.start("B", setup=B_SETUP, plugins="bitbucket,http")
    world.start("C", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    world.wait_plugin("B", "http", ["http"])
    world.wait_plugin("C", "bitbucket", ["bitbucket"])
    with world.client("C") as kos:
        wait_for(lambda: kos.list("world/B") == ["http"], 10, "B's http in C's cache")
        assert kos.list("world") == ["A", "B", "C"]
        assert kos.list("world/A") == ["bitbucket"]
        assert kos.list("world/C") == []  # export: no is invisible
        bucket = kos.lookup("world/A/bitbucket")
        assert _address(bucket).startswith("tcp:127.0.0.2:")  # A's plugin, directly
        bucket.Set("greeting", b"hello from C")
        factory = kos.lookup("world/B/http")
        requester = factory.GetHTTPRequester()
        assert _address(requester).startswith("tcp:127.0.0.3:")  # B's child, over TLS
        file = requester.Get(f"http://127.0.0.1:{web.server_port}/body")
        assert file.read() == BODY
        requester.Close()
        assert kos.lookup("bitbucket") is not None  # C's own, local bitbucket
        assert _address(kos.lookup("bitbucket")).startswith("unix:")
    with world.client("A") as kos:  # a kernel's own exported name, by both paths
        assert kos.lookup("world/A/bitbucket").Get("greeting") == b"hello from C"
        assert kos.lookup("bitbucket").Get("greeting") == b"hello from C"
    called = world.cli("C", "call", "world/A/bitbucket", "Get", "greeting")
    assert called.returncode == 0, called
    assert called.stdout.strip() == "hello from C"
    listed = world.cli("C", "ls", "world/B")
    assert listed.returncode == 0 and "HTTPAPI.Factory" in listed.stdout, listed


def test_names_follow_binds_and_unbinds_and_unknown_world_names_are_not_found(
    world: World,
) -> None:
    world.start("A")
    world.wait_plugin("A", "bitbucket", ["bitbucket"])
    world.start("B", setup="[bitbucket]\nexport: no\n")
    with world.client("B") as kos:
        wait_for(lambda: kos.list("world/A") == ["bitbucket"], 10, "A's bitbucket")
    stopped = world.cli("A", "plugin", "stop", "bitbucket")
    assert stopped.returncode == 0, stopped
    with world.client("B") as kos:
        wait_for(lambda: kos.list("world/A") == [], 10, "A's bitbucket to go")
    missing = world.cli("B", "call", "world/A/bitbucket", "Get", "k")
    assert missing.returncode == 1
    assert "world/A/bitbucket is not bound" in missing.stderr
    nobody = world.cli("B", "ls", "world/Z")
    assert nobody.returncode == 1 and "no kernel 'Z' in the world" in nobody.stderr


def test_a_watcher_sees_world_names_come_and_go(world: World) -> None:
    world.start("B", setup="[bitbucket]\nexport: no\n")
    world.wait_plugin("B", "bitbucket", ["bitbucket"])
    seen: list[tuple[str, str, str]] = []
    with world.client("B") as kos:
        events = kos.watch("world")

        def collect() -> None:
            with contextlib.suppress(KosError):  # the kernel stops at the end of the test
                for event in events:
                    seen.append((event.kind, event.path, event.typename))

        threading.Thread(target=collect, daemon=True).start()
        world.start("A")
        world.wait_plugin("A", "bitbucket", ["bitbucket"])
        bound = ("bind", "world/A/bitbucket", "BitBucketAPI.BitBucket")
        wait_for(lambda: bound in seen, 10, "B's watcher to see A's bitbucket")
        assert world.cli("A", "plugin", "stop", "bitbucket").returncode == 0
        unbound = ("unbind", "world/A/bitbucket", "BitBucketAPI.BitBucket")
        wait_for(lambda: unbound in seen, 10, "B's watcher to see it go")
        assert all(path.startswith("world/") for _, path, _ in seen), seen
        assert not any(path == "bitbucket" for _, path, _ in seen)  # B's own: not under world
