"""``kos watch`` and ``Kos.watch``: bind and unbind events as they happen."""

from __future__ import annotations

import json
import queue
import signal
import statistics
import subprocess
import threading
import time
from typing import IO

from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import CLI, kos_environ
from kos_plugins_bitbucket.plugin import BitBucket

TYPE = "BitBucketAPI.BitBucket"


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """The lines ``stream`` gives, as they come (a reader thread)."""
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            out.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return out


def test_kos_watch_prints_one_json_line_per_event_until_ctrl_c(
    kos_kernel: KernelProcess, kos_env: KosEnv
) -> None:
    kos_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    watcher = subprocess.Popen(
        [*CLI, "watch", "--json"],
        env=kos_environ(kos_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        assert lines_of(watcher.stderr).get(timeout=15) == "kos: watching / (Ctrl-C to stop)"
        out = lines_of(watcher.stdout)
        with kos_kernel.connect() as kos:
            sid = kos.bind_service("watched", BitBucket(10), TYPE)
            bound = json.loads(out.get(timeout=10))
            kos.unbind_service(sid)
            unbound = json.loads(out.get(timeout=10))
        assert {k: bound[k] for k in ("event", "path", "type")} == {
            "event": "bind",
            "path": "watched",
            "type": TYPE,
        }
        assert (unbound["event"], unbound["path"], unbound["seq"]) == (
            "unbind",
            "watched",
            bound["seq"] + 1,
        )
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(10) == 0
    finally:
        watcher.kill()
        watcher.wait()


def test_kos_watch_yields_events_under_its_path_within_50_ms(
    kos_kernel: KernelProcess,
) -> None:
    kos_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    received: queue.Queue[tuple[float, str, str]] = queue.Queue()
    with kos_kernel.connect() as kos:
        events = kos.watch("bitbucket")
        everything = kos.watch()
        rounds = 20

        def follow() -> None:
            for n, event in enumerate(everything, 1):
                received.put((time.monotonic(), event.kind, event.path))
                if n == 2 * rounds:
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        latencies = []
        for i in range(rounds):
            started = time.monotonic()
            sid = kos.bind_service(f"w{i}", BitBucket(10), TYPE)
            at, kind, path = received.get(timeout=10)
            assert (kind, path) == ("bind", f"w{i}")
            latencies.append(at - started)
            kos.unbind_service(sid)
            assert received.get(timeout=10)[1:] == ("unbind", f"w{i}")
        thread.join(10)
        everything.close()
        # Only what is under the watched path: none of the w<i> came, then bitbucket's
        # restart unbinds and binds it again.
        kos.restart_plugin("bitbucket")
        assert [next(events)[1:3] for _ in range(2)] == [
            ("unbind", "bitbucket"),
            ("bind", "bitbucket"),
        ]
        events.close()
    median = statistics.median(latencies) * 1000
    print(
        f"\nFIGURE watch latency (bind called -> event received): median {median:.1f} ms,"
        f" max {max(latencies) * 1000:.1f} ms over {rounds} binds"
    )
    assert median < 50
