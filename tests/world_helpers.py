"""Helpers of the world tests: kernels of one world on loopback, each in its own place.

Each kernel has its own runtime, state and config directories and listens on its
own ``127.0.0.x`` address, standing for a host of its own; all share one etcd and
one world authority.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kos_core._net import tls
from kos_core._world.etcd import Etcd
from kos_core._world.url import WorldURL
from kos_core.testing import (
    EtcdProcess,
    KernelProcess,
    KosEnv,
    make_env,
    running_kernel,
    wait_for,
)
from kos_helpers import CLI, Result, run

#: every bitbucket in these tests exports unless a test says otherwise
EXPORTED_BITBUCKET = "[bitbucket]\nexport: yes\n"


class World:
    """Kernels joined to one etcd; :meth:`stop` ends every one of them."""

    def __init__(
        self, etcd: EtcdProcess, base: Path, url: str | None = None, password: str | None = None
    ) -> None:
        self.etcd = etcd
        #: the world URL kernels join with (default: ``etcd``'s), and the password
        #: (``$KOS_WORLD_PASSWORD``) of its user
        self.url = url or etcd.url
        self.password = password
        self.base = base
        self.tls_dir = base / "tls"
        self.tls_dir.mkdir(mode=0o700)
        self._authority = tls.new_authority("kos world")
        (self.tls_dir / "ca.pem").write_text(self._authority.cert_pem)
        self.kernels: dict[str, KernelProcess] = {}
        self.envs: dict[str, KosEnv] = {}
        self._hosts = 1
        self._running = contextlib.ExitStack()  # every kernel started, closed by stop()

    def issue(self, name: str) -> None:
        """Write the world certificate of kernel ``name`` into the TLS directory."""
        issued = self._authority.issue(name, [], datetime.timedelta(days=1))
        (self.tls_dir / f"{name}.pem").write_text(issued.cert_pem)
        key = self.tls_dir / f"{name}-key.pem"
        key.write_text(issued.key_pem)
        key.chmod(0o600)

    def env(self, name: str, setup: str = EXPORTED_BITBUCKET) -> KosEnv:
        """A new place for kernel ``name`` (its certificate issued, its setup written)."""
        env = make_env(name)
        env.write_setup(setup)
        self.envs[name] = env
        if not (self.tls_dir / f"{name}.pem").exists():
            self.issue(name)
        return env

    def start(
        self,
        name: str,
        *,
        setup: str = EXPORTED_BITBUCKET,
        plugins: str = "bitbucket",
        ready: bool = True,
        extra: Sequence[str] = (),
        host: str | None = None,
        prefix: Sequence[str] = (),
        url: str | None = None,
        password: str | None = None,
    ) -> KernelProcess:
        """Start kernel ``name`` in the world on a loopback address of its own (joining
        with ``url`` and ``password`` if given, else the world's).
        """
        env = self.env(name, setup)
        if host is None:
            self._hosts += 1
            host = f"127.0.0.{self._hosts}"
        args = ["--world", url or self.url, "--listen", f"{host}:0", "--tls-dir", str(self.tls_dir)]
        environ = {"KOS_LOAD_PLUGINS": plugins}
        if password or self.password:
            environ["KOS_WORLD_PASSWORD"] = password or self.password or ""
        started = running_kernel(
            env,
            *args,
            *extra,
            ready=False,
            environ=environ,
            log_path=self.base / f"{name}.log",
            prefix=prefix,
        )
        kernel = self.kernels[name] = self._running.enter_context(started)
        if ready:
            with self.environ(name, plugins):
                kernel.wait_ready()
        return kernel

    @contextlib.contextmanager
    def environ(self, name: str, plugins: str = "bitbucket") -> Iterator[KosEnv]:
        """This process's environment pointed at kernel ``name``'s place for a while."""
        env = self.envs[name]
        saved = dict(os.environ)
        os.environ.update({**env.environ(), "KOS_LOAD_PLUGINS": plugins})
        try:
            yield env
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @contextlib.contextmanager
    def client(self, name: str) -> Iterator[Any]:
        """A :func:`kos_core.connect` connection to kernel ``name``."""
        import kos_core

        with self.environ(name):
            kos = kos_core.connect(name)
        try:
            yield kos
        finally:
            kos.close()

    def wait_plugin(self, name: str, plugin: str, services: Sequence[str]) -> int:
        """Wait until ``plugin`` of kernel ``name`` runs with ``services`` bound."""
        with self.environ(name):
            return self.kernels[name].wait_plugin(plugin, services=services)

    def cli(self, name: str, *args: str, timeout: float = 30.0) -> Result:
        """Run the ``kos`` CLI against kernel ``name``."""
        env = {**os.environ, **self.envs[name].environ()}
        return run([*CLI, *args], env=env, cwd=self.envs[name].state_dir, timeout=timeout)

    def join_refused(
        self,
        name: str,
        url: str,
        password: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> Result:
        """``kos run`` of kernel ``name`` joining with ``url``, run to its end (for a
        kernel the world refuses: it must exit by itself).
        """
        env = self.env(name)
        full = {**os.environ, **env.environ(), "KOS_LOAD_PLUGINS": "bitbucket", **(environ or {})}
        full.pop("KOS_WORLD_PASSWORD", None)
        if password is not None:
            full["KOS_WORLD_PASSWORD"] = password
        self._hosts += 1
        command = [*CLI, "run", "-n", name, "--world", url, "--listen", f"127.0.0.{self._hosts}:0"]
        command += ["--tls-dir", str(self.tls_dir)]
        return run(command, env=full, cwd=self.base, timeout=30)

    def names_seen_by(self, name: str, path: str = "world") -> list[str]:
        """What kernel ``name`` lists at ``path`` (``[]`` if it cannot)."""
        with self.client(name) as kos:
            return list(kos.list(path))

    def etcd_client(self, url: str | None = None, password: str | None = None) -> Etcd:
        """A kos etcd client of this world's etcd (to read or plant keys), or of ``url``."""
        return Etcd(WorldURL.parse(url or self.url, password or self.password))

    def stop(self) -> None:
        """Stop every kernel and remove every place."""
        self._running.close()
        for env in self.envs.values():
            shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)


def wait_listed(
    world: World, observer: str, path: str, expected: set[str], timeout: float
) -> float:
    """Wait until ``observer`` lists exactly ``expected`` at ``path``; seconds it took."""
    import time

    start = time.monotonic()
    wait_for(
        lambda: set(world.names_seen_by(observer, path)) == expected,
        timeout,
        f"{observer} to list {sorted(expected)} at {path}",
    )
    return time.monotonic() - start
