"""Fixtures shared by kos-core's tests that run real kernels."""

from __future__ import annotations

import pytest

from coretest_util import python_env
from kos_core.testing import KernelProcess, KosEnv, StartKernel


@pytest.fixture
def env(kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch) -> KosEnv:
    """``kos_env`` where only the plugins named in setup files exist, and plugin
    scripts can import :mod:`toyapi`.
    """
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "")
    monkeypatch.setenv("PYTHONPATH", python_env()["PYTHONPATH"])
    return kos_env


@pytest.fixture
def kernel(env: KosEnv, start_kernel: StartKernel) -> KernelProcess:
    """A kernel in ``env``, with no plugins of its own."""
    return start_kernel()
