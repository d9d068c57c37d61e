"""Fixtures of the simpleio tests: a private Xvfb for the session, a kernel per test
that boots only the simpleio plugin on it (or one per module, for tests that open no
window), and clients of that kernel.

The tests need a real X server and the X tools that drive its windows (Debian
packages xvfb, xdotool, x11-utils, xclip, imagemagick). Without them the tests that
need them skip at once, with one reason naming the packages; with ``CI`` set they
fail instead (``.ci/run`` installs the packages).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from kos_core.testing import KernelProcess, StartKernel, require, shared_kernel
from simpleio_helpers import TOOL_PACKAGES, Screen, StartSimpleIO, Xvfb


def need_x_tools() -> None:
    """Skip the test at once when an X tool is missing (fail instead when ``CI`` is set)."""
    missing = sorted({pkg for name, pkg in TOOL_PACKAGES.items() if not shutil.which(name)})
    require(not missing, f"X tools missing: install the Debian packages {' '.join(missing)}")


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
def start_simpleio(start_kernel: StartKernel, monkeypatch: pytest.MonkeyPatch) -> StartSimpleIO:
    """Start a kernel booting only simpleio, with ``DISPLAY`` set to the given display
    (or unset for ``None``), once its plugin runs. Every kernel is stopped after the
    test, and every process it left behind is killed.
    """
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "simpleio")

    def start(display: str | None) -> KernelProcess:
        if display is None:
            monkeypatch.delenv("DISPLAY", raising=False)
        else:
            monkeypatch.setenv("DISPLAY", display)
        kernel = start_kernel()
        kernel.wait_plugin("simpleio", services=["simpleio"])
        return kernel

    return start


@pytest.fixture
def kernel(start_simpleio: StartSimpleIO, xvfb: str) -> KernelProcess:
    """A kernel on the test display with its simpleio plugin running."""
    return start_simpleio(xvfb)


#: One kernel per module booting only simpleio on the session's Xvfb, for the tests
#: that open no window (one they opened would still be closing in the next test).
windowless_kernel = shared_kernel(
    environ=lambda request: {
        "KOS_LOAD_PLUGINS": "simpleio",
        "DISPLAY": request.getfixturevalue("xvfb"),
    },
    plugins={"simpleio": ["simpleio"]},
)
