"""Fixtures of the cross-distribution integration suite.

``kos_env``, ``start_kernel`` and ``kos_kernel`` come from ``kos_core.testing`` (a
pytest plugin that the kos-core distribution installs); the fixtures here build on them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from kos_core.testing import (
    EtcdProcess,
    KernelProcess,
    KosEnv,
    StartKernel,
    make_env,
    running_kernel,
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


@pytest.fixture(scope="module")
def module_kernel() -> Iterator[KernelProcess]:
    """One kernel (bitbucket only) shared by the tests of a module that opts in by
    overriding ``kos_env`` with ``shared_kos_env`` and ``bb_kernel`` with
    ``shared_bb_kernel``; for tests that neither stop it nor need it fresh.
    """
    env = make_env("sharedk")
    try:
        with pytest.MonkeyPatch.context() as patch:
            # KernelProcess's helpers (and the kernel) find their place in the environment
            for key, value in env.environ().items():
                patch.setenv(key, value)
            with running_kernel(env, environ={"KOS_LOAD_PLUGINS": "bitbucket"}) as kernel:
                kernel.wait_plugin("bitbucket", services=["bitbucket"])
                patch.undo()
                yield kernel
    finally:
        shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)


@pytest.fixture
def shared_kos_env(module_kernel: KernelProcess, monkeypatch: pytest.MonkeyPatch) -> KosEnv:
    """The module kernel's place, set in the environment for one test."""
    for key, value in module_kernel.env.environ().items():
        monkeypatch.setenv(key, value)
    return module_kernel.env


@pytest.fixture
def shared_bb_kernel(module_kernel: KernelProcess, shared_kos_env: KosEnv) -> KernelProcess:
    """The module kernel, checked to be still running with bitbucket bound."""
    if module_kernel.process.poll() is not None:
        pytest.fail(f"the module's shared kernel has exited:\n{module_kernel.log()}")
    module_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    return module_kernel


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
