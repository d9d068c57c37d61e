"""How the http plugin's requester children live and end: one per client; Close,
disconnect, no client, plugin death; the fork-server fast path and ``child-start: exec``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from conftest import StartHttp
from httptest_helpers import LOOPBACK, ONLY_HTTP, HttpPlugin
from kos_core import _rpc
from kos_core.errors import ServiceUnavailable
from kos_core.testing import (
    KosEnv,
    StartKernel,
    children_of,
    descendants_of,
    idle_spare,
    process_ended,
    sbh_pid,
    wait_ended,
    wait_for,
)
from kos_plugins_http import FileIOError

TEXT = b"some text\n"


def serve_text(web: HTTPServer) -> str:
    web.expect_request("/text").respond_with_data(TEXT)
    return web.url_for("/text")


def process_state(pid: int) -> str:
    """The state letter of ``pid`` from ``/proc`` (``-`` when gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "-"


def child_sockets(plugin: HttpPlugin) -> set[str]:
    """The ``p<pid>.sock`` files in the runtime directory, but the plugin's own."""
    runtime = plugin.kernel.env.runtime_dir
    return {p.name for p in runtime.glob("p*.sock")} - {f"p{plugin.pid}.sock"}


# ---------------------------------------------------------------------------- fork server


def test_close_ends_the_requester_child(start_http: StartHttp, web: HTTPServer) -> None:
    plugin = start_http()
    fork_server = plugin.fork_server()
    cmdline = Path(f"/proc/{fork_server}/cmdline").read_bytes().split(b"\0")
    assert b"kos_core._children.forkserver" in cmdline
    requester, pid = plugin.requester_with_pid()
    assert pid in children_of(fork_server)
    assert requester.Get(serve_text(web)).read() == TEXT
    assert f"p{pid}.sock" in child_sockets(plugin)
    requester.Close()
    wait_ended(pid, "requester", reaped=True)
    with pytest.raises(ServiceUnavailable):
        requester.Get(web.url_for("/text"))
    assert f"p{pid}.sock" not in child_sockets(plugin)


def test_dropping_the_connection_without_close_ends_the_child(
    start_http: StartHttp, web: HTTPServer
) -> None:
    url = serve_text(web)
    plugin = start_http()
    requester, pid = plugin.requester_with_pid()
    body = requester.Get(url)  # an open body does not keep the child alive
    assert body.read(4) == TEXT[:4]
    link = _rpc.connection_of(requester)
    assert link is not None
    link.close()
    wait_ended(pid, "requester", reaped=True)

    # Dropping the last reference to the proxy closes the connection too.
    unused, unused_pid = plugin.requester_with_pid(keep=False)
    assert unused.Get(url).read() == TEXT
    del unused
    gc.collect()
    wait_ended(unused_pid, "requester", reaped=True)


def test_a_requester_nobody_uses_ends_after_the_client_timeout(
    start_http: StartHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_CHILD_CLIENT_TIMEOUT", "1")  # inherited by kernel, plugin, children
    plugin = start_http()
    _requester, pid = plugin.requester_with_pid()  # never called: no client ever connects
    wait_ended(pid, "requester", reaped=True)


def test_killing_the_plugin_ends_its_fork_server_and_children(
    start_http: StartHttp, web: HTTPServer
) -> None:
    plugin = start_http()
    used, used_pid = plugin.requester_with_pid()
    assert used.Get(serve_text(web)).read() == TEXT
    _idle, idle_pid = plugin.requester_with_pid()
    fork_server = plugin.fork_server()
    spare = idle_spare(plugin.fork_server(), but={used_pid, idle_pid})
    assert descendants_of(plugin.pid) == {fork_server, used_pid, idle_pid, spare}
    os.kill(plugin.pid, signal.SIGKILL)
    for pid in (fork_server, used_pid, idle_pid, spare):
        wait_for(lambda pid=pid: process_ended(pid), 5, f"process {pid} to end")  # type: ignore[misc]
    with pytest.raises(ServiceUnavailable):
        used.Get(web.url_for("/text"))


def test_many_requesters_made_and_dropped_leave_no_children(
    start_http: StartHttp, web: HTTPServer
) -> None:
    url = serve_text(web)
    plugin = start_http()
    fork_server = plugin.fork_server()
    factory = plugin.factory
    handed: set[int] = set()
    for i in range(200):
        try:
            requester = factory.GetHTTPRequester()
            handed.add(sbh_pid(requester))
            if i % 50 == 0:
                assert requester.Get(url).read() == TEXT
            else:
                with pytest.raises(FileIOError, match="not allowed"):
                    requester.Get("file:///etc/passwd")  # connects, without network traffic
        except Exception as exc:
            raise AssertionError(f"requester number {i} failed: {exc!r}") from exc
        del requester
    gc.collect()
    assert len(handed) == 200  # each from its own process

    def left() -> set[int]:  # zombies count: the fork server must reap its children
        return descendants_of(plugin.pid) - {fork_server}

    try:
        wait_for(lambda: not left() & handed, 30, "every requester of the plugin to end")
    except TimeoutError as exc:
        states = {pid: process_state(pid) for pid in sorted(left() & handed)}
        raise AssertionError(f"{exc}: {len(states)} left: {states}") from None
    # What stays under the fork server is its one spare, which nobody was handed.
    spare = idle_spare(plugin.fork_server())
    assert left() == {spare} and spare not in handed
    assert child_sockets(plugin) == {f"p{spare}.sock"}
    assert plugin.factory.GetHTTPRequester().Get(url).read() == TEXT  # still serving


@pytest.mark.parametrize("spares", [0, 3])
def test_spare_children_sets_how_many_requesters_wait_forked(
    start_http: StartHttp, web: HTTPServer, spares: int
) -> None:
    plugin = start_http(LOOPBACK + f"spare-children: {spares}\n")
    fork_server = plugin.fork_server()
    wait_for(lambda: len(children_of(fork_server)) == spares, 10, f"{spares} spares")
    idle = children_of(fork_server)
    requester, pid = plugin.requester_with_pid()
    assert requester.Get(serve_text(web)).read() == TEXT
    assert (pid in idle) == (spares > 0)  # with spares, a waiting one was handed out
    requester.Close()
    wait_ended(pid, "requester", reaped=True)
    wait_for(lambda: len(children_of(fork_server)) == spares, 10, f"{spares} spares again")


# ---------------------------------------------------------------------------- exec


def test_child_start_exec_uses_spawnserver(start_http: StartHttp, web: HTTPServer) -> None:
    plugin = start_http(LOOPBACK + "child-start: exec\n")
    assert children_of(plugin.pid) == set()  # no fork server
    requester, pid = plugin.requester_with_pid()
    cmdline = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    script = next(part for part in cmdline if part.endswith("requester.py"))
    flag = cmdline.index(script) + 1
    assert cmdline[flag] == "-f" and cmdline[flag + 1].isdigit()
    assert json.loads(cmdline[flag + 2])["allow_hosts"] == ["127.0.0.1", "localhost"]
    assert requester.Get(serve_text(web)).read() == TEXT
    headers, body = requester.GetWithInfo(web.url_for("/text"))
    assert ("Content-Length", str(len(TEXT))) in headers
    assert body.readline() == TEXT
    requester.Close()
    wait_ended(pid, "requester", reaped=True)


def test_child_start_exec_children_end_on_disconnect_and_plugin_death(
    start_http: StartHttp, web: HTTPServer
) -> None:
    plugin = start_http(LOOPBACK + "child-start: exec\n")
    dropped, dropped_pid = plugin.requester_with_pid()
    assert dropped.Get(serve_text(web)).read() == TEXT
    link = _rpc.connection_of(dropped)
    assert link is not None
    link.close()
    wait_ended(dropped_pid, "requester", reaped=True)

    kept, kept_pid = plugin.requester_with_pid()
    assert kept.Get(web.url_for("/text")).read() == TEXT
    os.kill(plugin.pid, signal.SIGKILL)
    wait_for(lambda: process_ended(kept_pid), 5, f"requester {kept_pid} to end")


# ---------------------------------------------------------------------------- settings


BAD_SETTINGS = [
    ({"max-size": "lots"}, 'bad value for max-size: "lots" (use a whole number)'),
    ({"timeout": "-1"}, 'bad value for timeout: "-1" (must not be negative)'),
    ({"child-start": "thread"}, 'bad value for child-start: "thread" (use one of: fork, exec)'),
    ({"spare-children": "some"}, 'bad value for spare-children: "some" (use a whole number)'),
    ({"spare-children": "99"}, 'bad value for spare-children: "99" (must be at most 32)'),
    (
        {"max-requesters-per-client": "0"},
        'bad value for max-requesters-per-client: "0" (must be at least 1)',
    ),
    ({"max-requesters": "lots"}, 'bad value for max-requesters: "lots" (use a whole number)'),
]


def test_a_bad_setting_stops_the_plugin_with_one_clear_line(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    start_kernel(setup=ONLY_HTTP)  # a kernel without the http plugin running
    for options, fragment in BAD_SETTINGS:
        plugin = subprocess.run(
            [sys.executable, "-m", "kos_plugins_http.plugin", "-n", kos_env.kernel],
            env={**os.environ, "KOS_PLUGIN_OPTIONS": json.dumps(options)},
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        lines = [line for line in plugin.stderr.splitlines() if line.strip()]
        assert plugin.returncode == 2, plugin
        assert len(lines) == 1, plugin.stderr
        assert "bad setting in [http]" in lines[0] and fragment in lines[0], lines[0]
