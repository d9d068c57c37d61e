"""Fixtures of the cross-distribution integration suite.

``kos_env``, ``start_kernel`` and ``kos_kernel`` come from ``kos_core.testing`` (a
pytest plugin that the kos-core distribution installs); the fixtures here build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from kos_core.testing import (
    EtcdProcess,
    KernelProcess,
    KosEnv,
    StartKernel,
    shared_kernel,
)
from kos_helpers import Cli, HandPlugin, Result, kos_environ, run
from world_helpers import World

StartPlugin = Callable[..., HandPlugin]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "all_plugins: discover every installed plugin (by default tests load only bitbucket)",
    )


@pytest.fixture(autouse=True)
def only_bitbucket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load only the bitbucket plugin (``KOS_LOAD_PLUGINS``): other installed plugin
    distributions neither slow these tests down nor change what they see. Tests of
    discovery and of the default boot are marked ``all_plugins`` and see everything.
    """
    if request.node.get_closest_marker("all_plugins") is None:
        monkeypatch.setenv("KOS_LOAD_PLUGINS", "bitbucket")
    else:
        monkeypatch.delenv("KOS_LOAD_PLUGINS", raising=False)


@pytest.fixture
def cli(kos_env: KosEnv, tmp_path: Path) -> Cli:
    """Run the ``kos`` CLI in the test's kos place, from ``tmp_path``."""
    from kos_helpers import CLI

    def call(
        *args: str, extra_env: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> Result:
        return run(
            [*CLI, *args], env=kos_environ(kos_env, extra_env), cwd=tmp_path, timeout=timeout
        )

    return call


@pytest.fixture
def bb_kernel(kos_kernel: KernelProcess) -> KernelProcess:
    """A running kernel whose bitbucket plugin is registered and bound."""
    kos_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    return kos_kernel


@pytest.fixture
def start_plugin(kos_env: KosEnv, tmp_path: Path) -> Iterator[StartPlugin]:
    """Run plugin scripts by hand (``start_plugin(script, kernel=None, args=())``);
    every one is killed after the test.
    """
    started: list[HandPlugin] = []

    def start(
        script: Path,
        kernel: str | None = None,
        args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> HandPlugin:
        plugin = HandPlugin(
            script,
            kernel or kos_env.kernel,
            kos_environ(kos_env, extra_env),
            tmp_path,
            args=args,
            tag=f"-{len(started)}",
        )
        started.append(plugin)
        return plugin

    try:
        yield start
    finally:
        for plugin in started:
            plugin.stop()


@pytest.fixture
def station(start_kernel: StartKernel) -> KernelProcess:
    """A kernel running bitbucket, whose policy lets KPs look it up."""
    kernel = start_kernel(setup="[kp-access]\nlookup: bitbucket\n")
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    return kernel


#: One kernel (bitbucket only, bound) shared by the tests of a module that opts in by
#: overriding ``kos_env`` with ``shared_kos_env`` and ``bb_kernel`` with this; for tests
#: that neither stop it nor need it fresh.
shared_bb_kernel = shared_kernel(
    environ={"KOS_LOAD_PLUGINS": "bitbucket"}, plugins={"bitbucket": ["bitbucket"]}
)


@pytest.fixture
def shared_kos_env(shared_bb_kernel: KernelProcess) -> KosEnv:
    """The shared kernel's place (set in the environment for the test)."""
    return shared_bb_kernel.env


@pytest.fixture
def world(etcd: EtcdProcess, tmp_path: Path) -> Iterator[World]:
    """Kernels of one world (a real etcd, one world authority), each on its own
    ``127.0.0.x`` address in its own place; all stopped after the test.
    """
    kernels = World(etcd, tmp_path)
    try:
        yield kernels
    finally:
        kernels.stop()
