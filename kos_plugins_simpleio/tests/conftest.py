"""Fixtures of the simpleio tests: a private Xvfb for the session, a kernel per test
that boots only the simpleio plugin on it, and clients of that kernel.

The tests need a real X server and the X tools that drive its windows (Debian
packages xvfb, xdotool, x11-utils, xclip, imagemagick). Without them the tests that
need them skip at once, with one reason naming the packages; with ``CI`` set they
fail instead (``.ci/run`` installs the packages).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kos_core.testing import KosEnv
from simpleio_helpers import TOOL_PACKAGES, Screen, SimpleIOKernel, StartKernel, Xvfb


def missing_x_tools() -> list[str]:
    """The Debian packages of the X tools that are not on ``PATH``."""
    return sorted({package for name, package in TOOL_PACKAGES.items() if not shutil.which(name)})


def need_x_tools() -> None:
    """Skip the test at once when an X tool is missing (fail instead when ``CI`` is set)."""
    missing = missing_x_tools()
    if missing:
        reason = f"X tools missing: install the Debian packages {' '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Xvfb for the whole session; its display name (``:N``)."""
    need_x_tools()
    server = Xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log")
    try:
        yield server.display
    finally:
        server.stop()


@pytest.fixture
def screen(xvfb: str) -> Screen:
    """The X display the tests' kernels put their windows on."""
    return Screen(xvfb)


@pytest.fixture
def start_kernel(
    kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[StartKernel]:
    """Start a kernel booting only simpleio, with ``DISPLAY`` set to the given display
    (or unset for ``None``). Every kernel is stopped after the test, and every process
    it left behind is killed.
    """
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "simpleio")
    started: list[SimpleIOKernel] = []

    def start(display: str | None) -> SimpleIOKernel:
        if display is None:
            monkeypatch.delenv("DISPLAY", raising=False)
        else:
            monkeypatch.setenv("DISPLAY", display)
        kernel = SimpleIOKernel(kos_env, tmp_path / f"kernel-{len(started)}.log")
        started.append(kernel)
        return kernel

    try:
        yield start
    finally:
        for kernel in started:
            kernel.stop()


@pytest.fixture
def kernel(start_kernel: StartKernel, xvfb: str) -> SimpleIOKernel:
    """A kernel on the test display with its simpleio plugin running."""
    return start_kernel(xvfb)
