"""Test helpers for kos and for plugin authors (a pytest plugin, loaded automatically).

Fixtures:

* ``kos_env`` — a private runtime, state and config directory and kernel name,
  set in the environment for the test (and for every process it starts).
* ``start_kernel`` — starts real kernels (``kos run``):
  ``start_kernel("--listen", "127.0.0.1:0", setup="[bitbucket]\\n...", env=other_env)``
  writes the setup file (if given), starts the kernel, waits until it answers (unless
  ``ready=False``) and returns its :class:`KernelProcess` (``name``, ``env``,
  ``process``, ``log()``, ``connect()``, ``wait_plugin()``, ``stop()``). Every kernel
  it started is stopped after the test, pass or fail, and every process the kernel
  started is ended with it. In a plugin distribution's tests, kernels boot only the
  plugin under test (the ``kos.plugins`` entry points of the nearest ``pyproject.toml``):
  another installed plugin cannot break them. ``@pytest.mark.kos_plugins("bitbucket")``
  adds others; ``environ={"KOS_LOAD_PLUGINS": ...}`` or ``$KOS_LOAD_PLUGINS`` decides.
* ``kos_kernel`` — one such kernel, booted with its default plugins.
* ``etcd`` — a real ``etcd`` (from ``PATH``) on loopback ports with a temporary data
  directory, stopped after the test. :class:`EtcdProcess` itself takes TLS with client
  certificates (:class:`EtcdTLS`) and more etcd flags; :func:`etcd_cluster` starts
  several members.

Outside a test function (a module-scoped fixture, a script), :func:`running_kernel`
is the same as a context manager: ``with running_kernel(make_env()) as kernel: ...``.
:func:`shared_kernel` makes a fixture that gives every test of a module one kernel
(for tests that only read: look up, list, call read-only services).

Without a kernel: :func:`served` serves a service object through the real wire on a
private socket and gives the test a proxy (``with served(Greeter(), GreeterAPI) as g:``):
the same argument and result checks, the same exceptions as through a kernel.

Helpers: :func:`wait_for` waits on a condition with a deadline (never a bare sleep);
:func:`process_ended`, :func:`process_reaped` and :func:`wait_ended` tell when a
process has gone; :func:`children_of`, :func:`descendants_of`, :func:`sbh_pid` and
:func:`idle_spare` find processes; :func:`require` skips a test that cannot run
here, or fails it when ``$CI`` is set (CI installs what the tests need: a skipped
test there would be a missing test). With ``$CI`` set, hypothesis runs with the
``ci`` settings profile (no per-example deadline: a shared CI machine is slow).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kos_core._testkit.harness import served
from kos_core._testkit.kernels import (
    KernelProcess,
    KosEnv,
    StartKernel,
    make_env,
    running_kernel,
)
from kos_core._testkit.processes import (
    children_of,
    descendants_of,
    idle_spare,
    process_ended,
    process_reaped,
    sbh_pid,
    wait_ended,
    wait_for,
)
from kos_core._testkit.under_test import MARKER, load_plugins_environ
from kos_core._world.etcd_process import EtcdProcess, EtcdTLS, etcd_binary, etcd_cluster

__all__ = [
    "EtcdProcess",
    "EtcdTLS",
    "KernelProcess",
    "KosEnv",
    "StartKernel",
    "children_of",
    "descendants_of",
    "etcd",
    "etcd_cluster",
    "idle_spare",
    "kos_env",
    "kos_kernel",
    "make_env",
    "process_ended",
    "process_reaped",
    "require",
    "require_etcd",
    "running_kernel",
    "sbh_pid",
    "served",
    "shared_kernel",
    "start_kernel",
    "wait_ended",
    "wait_for",
]


def pytest_configure(config: pytest.Config) -> None:
    """With ``$CI`` set, load hypothesis's ``ci`` profile (no per-example deadline)."""
    try:
        from hypothesis import settings
    except ImportError:  # hypothesis is a test tool, not a dependency of kos-core
        return
    config.addinivalue_line(
        "markers", f"{MARKER}(*names): plugins the test's kernels boot besides the one under test"
    )
    settings.register_profile("ci", deadline=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")


def require(condition: object, why: str) -> None:
    """Skip the calling test unless ``condition`` holds; fail it instead when ``$CI`` is
    set. ``why`` says what is missing and how to get it.
    """
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must provide it: a skipped test there is a missing test)")
    pytest.skip(why)


@pytest.fixture
def kos_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[KosEnv]:
    """A private kos environment (runtime, state, config dirs, kernel name) for one test."""
    env = make_env()
    for key, value in env.environ().items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)


@pytest.fixture
def start_kernel(kos_env: KosEnv, request: pytest.FixtureRequest) -> Iterator[StartKernel]:
    """Start kernels (``start(*args, env=None, **running_kernel_options)``); all are
    closed after the test, pass or fail. They boot the plugin under test and those the
    test's ``kos_plugins`` marker names (see the module's docstring).
    """
    also = [name for mark in request.node.iter_markers(MARKER) for name in mark.args]
    default_environ = load_plugins_environ(request.path, also)
    with contextlib.ExitStack() as stack:
        count = 0

        def start(*args: str, env: KosEnv | None = None, **options: Any) -> KernelProcess:
            nonlocal count
            place = env or kos_env
            log_path = place.state_dir / f"kernel-{place.kernel}-{count}.log"
            count += 1
            options["environ"] = {**default_environ, **(options.get("environ") or {})}
            kernel = running_kernel(place, *args, log_path=log_path, **options)
            return stack.enter_context(kernel)

        yield start


@pytest.fixture
def kos_kernel(start_kernel: StartKernel) -> KernelProcess:
    """A running kernel with the installed plugins booted (per the test's setup files)."""
    return start_kernel()


def shared_kernel(
    *args: str,
    kernel: str = "sharedk",
    setup: str | Callable[[KosEnv], str] | None = None,
    environ: Mapping[str, str] | Callable[[pytest.FixtureRequest], Mapping[str, str]] | None = None,
    plugins: Mapping[str, Sequence[str]] | None = None,
) -> Any:
    """A fixture giving every test of a module that requests it the same kernel.

    Assign it to the fixture's name in a test module (or a ``conftest.py``: each module
    still gets its own kernel)::

        kernel = shared_kernel(environ={"KOS_LOAD_PLUGINS": ""})

    The first test that requests it starts ``kos run -n KERNEL ARGS`` in a fresh
    :func:`make_env` place (``setup`` is the plugin setup file to write first, or a
    function of the place that writes what it needs and returns that text), with the
    test's environment plus ``environ``; the kernel is closed once the module's tests
    are done. For each test it sets the kernel's place and ``environ`` in the
    environment (as ``kos_env`` does: for the test and every process it starts),
    fails the test if the kernel has exited, and waits until each plugin in
    ``plugins`` runs with the services listed for it. ``environ`` may be a function
    of the test's ``request``, to use fixtures of a wider scope (the same for every
    test): ``environ=lambda request: {"DISPLAY": request.getfixturevalue("xvfb")}``.

    Only for tests that leave the kernel as they found it: a test that binds, stops or
    kills something, or changes setup files, starts its own kernel (``start_kernel``).
    A module whose tests also request ``kos_env`` overrides it to return this kernel's
    ``env``.
    """
    key = pytest.StashKey[KernelProcess | str]()
    wanted = {name: list(services) for name, services in (plugins or {}).items()}

    def start(module: pytest.Module, env: KosEnv, extra: Mapping[str, str]) -> KernelProcess:
        stack = contextlib.ExitStack()
        module.addfinalizer(stack.close)
        # last: if the module's tests are set up again (pytest-xdist may come back to a
        # module after another one), the next test starts a new kernel
        stack.callback(module.stash.__delitem__, key)
        stack.callback(shutil.rmtree, env.runtime_dir.parent, ignore_errors=True)
        text = setup(env) if callable(setup) else setup
        return stack.enter_context(running_kernel(env, *args, setup=text, environ=extra))

    @pytest.fixture
    def fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> KernelProcess:
        """The module's shared kernel, its place set in the environment for this test."""
        module: pytest.Module | None = request.node.getparent(pytest.Module)
        assert module is not None, "shared_kernel is for tests in modules"
        process = module.stash.get(key, None)
        if isinstance(process, str):
            pytest.fail(process)
        extra = dict(environ(request) if callable(environ) else environ or {})
        env = make_env(kernel) if process is None else process.env
        # set first: KernelProcess finds the kernel (to wait for it) in the environment
        for name, value in {**env.environ(), **extra}.items():
            monkeypatch.setenv(name, value)
        if process is None:
            module.stash[key] = "the module's shared kernel did not start: see its first test"
            process = module.stash[key] = start(module, env, extra)
        if process.process.poll() is not None:
            pytest.fail(f"the module's shared kernel has exited:\n{process.log()}")
        for name, services in wanted.items():
            process.wait_plugin(name, services=services)
        return process

    return fixture


# ---------------------------------------------------------------------------- etcd


def require_etcd() -> None:
    """Skip the calling test when ``etcd`` is not on ``PATH`` (fail it when ``$CI`` is set)."""
    require(
        etcd_binary() is not None,
        "etcd is not on PATH: install the Debian package etcd-server to run the world tests",
    )


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    """A running etcd on loopback with its own data directory; stopped (and its data
    removed) after the test, also when the test fails.
    """
    require_etcd()
    base = Path(tempfile.mkdtemp(prefix="kos-etcd-"))
    server = EtcdProcess(base / "data")
    try:
        yield server.start()
    finally:
        server.kill()
        shutil.rmtree(base, ignore_errors=True)
