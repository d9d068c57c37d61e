"""KP figures: from submitting a KP to its ``__main__`` running, and one migration
A → B of a KP carrying 1 MiB of state, between two real kernels of one runtime
directory and between two kernels of one world (each on its own loopback address
with its own runtime directory, a private etcd: the station-to-station route).

Usage::

    python benchmarks/kp.py [--runs N] [--json PATH]

All kernels (``kos run``) run bitbucket and let KPs look it up; they run in a
private temporary environment and are stopped with everything they started, also on
Ctrl-C or an error. Times are taken with the machine's clock in the benchmark and
in the KP processes (one machine, one clock): a KP stores the time its ``__main__``
started in the bitbucket of the kernel it runs at.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from common import environ
from kos_core.testing import EtcdProcess, KernelProcess, make_env, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from world_helpers import World  # the tests' world of loopback kernels

SETUP = "[kp-access]\nlookup: bitbucket\n"
AWAY = "kpbenchb"
#: the kernels of the world: A on 127.0.0.2, B on 127.0.0.3
WORLD_HOME, WORLD_AWAY = "kpworlda", "kpworldb"
MIB = 1024 * 1024

#: ``args``: ``stay KEY`` stores when its ``__main__`` ran; ``KERNEL KEY SIZE`` moves to
#: KERNEL with SIZE random bytes and stores when it left and when it arrived
SOURCE = """
import json, os, time

class Bench:
    def __main__(self, kos):
        now = time.time()
        where, key = kos.args[0], kos.args[1]
        bucket = kos.lookup("bitbucket")
        if where == "stay":
            bucket.Set("main-" + key, json.dumps(now).encode())
        elif not hasattr(self, "left"):
            self.blob = os.urandom(int(kos.args[2]))
            self.left = time.time()
            kos.migrate(where)
        else:
            bucket.Set("moved-" + key, json.dumps([self.left, now, len(self.blob)]).encode())
"""


@contextmanager
def two_kernels() -> Iterator[tuple[KernelProcess, KernelProcess]]:
    """Kernels A and B of one private runtime directory, serving bitbucket."""
    env = make_env(f"kpbench{os.getpid()}")
    env.write_setup(SETUP)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, env.runtime_dir.parent, True)
        stack.enter_context(environ({**env.environ(), "KOS_LOAD_PLUGINS": "bitbucket"}))
        kernels = []
        for place in (env, dataclasses.replace(env, kernel=AWAY)):
            kernel = KernelProcess(place)
            stack.callback(kernel.stop)
            kernels.append(kernel)
        for kernel in kernels:
            kernel.wait_ready()
            kernel.wait_plugin("bitbucket", services=["bitbucket"])
        yield kernels[0], kernels[1]


@contextmanager
def world_kernels() -> Iterator[World]:
    """Kernels A and B of one world (a private etcd), each on its own loopback address
    with its own runtime directory, serving bitbucket; A's cache knows B.
    """
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kosb-kp-")))
        etcd = EtcdProcess(base / "etcd")
        stack.callback(etcd.stop)
        etcd.start()
        world = World(etcd, base)
        stack.callback(world.stop)
        for name in (WORLD_HOME, WORLD_AWAY):
            world.start(name, setup=SETUP)
            world.wait_plugin(name, "bitbucket", ["bitbucket"])
        wait_for(lambda: WORLD_AWAY in world.names_seen_by(WORLD_HOME), 10, "A to know B")
        yield world


def stored(kos: Any, key: str) -> Any:
    """What a KP stored under ``key`` in the bitbucket of ``kos``'s kernel (waits for it)."""
    bucket = kos.lookup("bitbucket")
    return json.loads(wait_for(lambda: bucket.Get(key), 30, key))


def submit_to_main(home: KernelProcess, path: Path, runs: int) -> dict[str, list[float]]:
    """``SubmitKP`` (the kernel API, as ``kos kp submit`` calls it) to ``__main__``;
    and the ``kos kp submit`` command, its own interpreter included.
    """
    out: dict[str, list[float]] = {"answered": [], "main": [], "cli": []}
    with home.connect() as kos:
        for i in range(runs):
            start = time.time()
            kos.kernel.SubmitKP(f"{path}:Bench", path.read_text(), ["stay", f"api{i}"], "")
            out["answered"].append(time.time() - start)
            out["main"].append(stored(kos, f"main-api{i}") - start)
        command = [sys.executable, "-m", "kos_core.cli", "kp", "submit", f"{path}:Bench", "--"]
        for i in range(max(3, runs // 2)):
            start = time.time()
            subprocess.run([*command, "stay", f"cli{i}"], check=True, capture_output=True)
            out["cli"].append(stored(kos, f"main-cli{i}") - start)
    return out


def migrations(home: Any, away: Any, path: Path, size: int, runs: int) -> list[float]:
    """Seconds from ``kos.migrate()`` at A to ``__main__`` running at B (``home`` and
    ``away`` are connections to A and B).
    """
    taken = []
    for i in range(runs):
        key = f"{size}-{i}"
        home.kernel.SubmitKP(f"{path}:Bench", path.read_text(), [away.name, key, str(size)], "")
        left, arrived, carried = stored(away, f"moved-{key}")
        assert carried == size
        taken.append(arrived - left)
    return taken


def interpreter(code: str, runs: int) -> list[float]:
    """Seconds a fresh ``python -I -c code`` takes, start to exit."""
    taken = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", code], check=True)
        taken.append(time.perf_counter() - start)
    return taken


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return (
        f"{statistics.median(ms):7.1f} ms median of {len(ms)} (min {ms[0]:.1f}, max {ms[-1]:.1f})"
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="samples per figure (10)")
    parser.add_argument("--json", type=Path, help="also write the samples as JSON")
    options = parser.parse_args()
    figures: dict[str, list[float]] = {}
    with two_kernels() as (home, away):
        path = home.env.state_dir / "bench_kp.py"
        path.write_text(SOURCE)
        log("submit -> __main__ ...")
        found = submit_to_main(home, path, options.runs)
        figures["SubmitKP -> answered (the KP's status line R)"] = found["answered"]
        figures["SubmitKP -> __main__ running"] = found["main"]
        figures["kos kp submit (CLI process) -> __main__ running"] = found["cli"]
        with home.connect() as a, away.connect() as b:
            for size in (0, MIB):
                log(f"migrations with {size} bytes of state ...")
                found_moves = migrations(a, b, path, size, options.runs)
                name = f"migrate() at A -> __main__ at B, {size // 1024} KiB of state"
                figures[name] = found_moves
    with world_kernels() as world:
        path = world.base / "bench_kp.py"
        path.write_text(SOURCE)
        with world.client(WORLD_HOME) as a, world.client(WORLD_AWAY) as b:
            for size in (0, MIB):
                log(f"migrations through the world with {size} bytes of state ...")
                found_moves = migrations(a, b, path, size, options.runs)
                name = f"migrate() A -> B of the world, {size // 1024} KiB of state"
                figures[name] = found_moves
    log("fresh interpreters ...")
    figures["python -I -c pass"] = interpreter("pass", options.runs)
    figures["python -I -c 'import kos_core._kp.runner'"] = interpreter(
        "import kos_core._kp.runner", options.runs
    )
    width = max(map(len, figures))
    for name, samples in figures.items():
        print(f"{name:<{width}}  {summary(samples)}")
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
