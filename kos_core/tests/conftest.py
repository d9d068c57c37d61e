"""Fixtures shared by kos-core's tests that run real kernels."""

from __future__ import annotations

import pytest

from coretest_util import kernel_environ
from kos_core.testing import KernelProcess, KosEnv, StartKernel


@pytest.fixture
def env(kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch) -> KosEnv:
    """``kos_env`` where only the plugins named in setup files exist, and plugin
    scripts can import :mod:`toyapi`.
    """
    for name, value in kernel_environ().items():
        monkeypatch.setenv(name, value)
    return kos_env


@pytest.fixture
def kernel(env: KosEnv, start_kernel: StartKernel) -> KernelProcess:
    """A kernel in ``env``, with no plugins of its own."""
    return start_kernel()
