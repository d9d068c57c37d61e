"""The kos test matrix.

``nox`` runs what CI needs: every distribution's own tests on every Python of
``PYTHONS``, each in a fresh environment holding only that distribution and what it
declares; the cross-distribution integration suite against non-editable installs on
the oldest and the newest of them; lint and type checks. Sessions of a Python that is
not on PATH are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox
import nox.command

ROOT = Path(__file__).parent
DISTRIBUTIONS = sorted(p.name for p in ROOT.glob("kos_*") if (p / "pyproject.toml").is_file())
PYTHONS = ["3.11", "3.12", "3.13"]  # oldest to newest; the oldest is requires-python's floor
TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "pytest-xdist>=3.5"]
#: what only ``benchmarks/peers.py`` needs: the systems kos is compared with
BENCHMARK_PEERS = ["Pyro5>=5.15", "msgpack>=1.0"]
#: pytest workers per session: most of a test's time is spent waiting on real processes
#: and sockets, so two workers halve a session even on two cores (``-- -n 0`` for one)
WORKERS = ["-n", str(min(max(os.cpu_count() or 1, 2), 4))]

nox.options.sessions = ["lint", "typecheck", "tests", "integration"]
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"  # only interpreters already on the machine
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False


def _with_core(dist: str) -> list[str]:
    """A distribution with its test extras and, unless it is kos_core itself, the local
    kos_core it needs (kos-core is not taken from an index)."""
    return [f"./{dist}[test]"] if dist == "kos_core" else ["./kos_core", f"./{dist}[test]"]


@nox.session(python=PYTHONS)
@nox.parametrize("dist", DISTRIBUTIONS)
def tests(session: nox.Session, dist: str) -> None:
    """One distribution's own tests, with only its declared dependencies installed."""
    session.install(*_with_core(dist), *TEST_TOOLS)
    # The simpleio tests drive real windows with real key events: one at a time.
    workers = [] if dist == "kos_plugins_simpleio" else WORKERS
    session.run("pytest", *workers, f"{dist}/tests", *session.posargs)


@nox.session(python=[PYTHONS[0], PYTHONS[-1]])
def integration(session: nox.Session) -> None:
    """Every distribution installed non-editable; tests/ against real kernels and plugins."""
    # pip and hatchling: one test installs the plugin template as a user would.
    session.install(*(f"./{d}[test]" for d in DISTRIBUTIONS), *TEST_TOOLS, "pip", "hatchling")
    session.run("pytest", *WORKERS, "tests", *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every distribution's source."""
    session.install("mypy>=1.11", *(f"./{d}" for d in DISTRIBUTIONS), *TEST_TOOLS)
    session.run("mypy", "--strict", *(f"{d}/src" for d in DISTRIBUTIONS), "_template/src")


@nox.session(python=PYTHONS[-1], default=False)
def coverage(session: nox.Session) -> None:
    """Line coverage of every distribution, installed non-editable, over every test suite:
    the test process, the kernels, plugins, fork servers and children they start
    (``[tool.coverage]`` in pyproject.toml); not part of the default run.
    """
    session.install(
        *(f"./{d}[test]" for d in DISTRIBUTIONS),
        *TEST_TOOLS,
        "pip",
        "hatchling",
        "coverage[toml]>=7.10",  # [run] patch: subprocesses, forks and os._exit
    )
    session.run("coverage", "erase")
    # One pytest run per folder, as the tests and integration sessions run them (each
    # folder has its own conftest.py); the simpleio tests one at a time, as there.
    failed = []
    for folder in [*(f"{d}/tests" for d in DISTRIBUTIONS), "tests"]:
        workers = [] if folder.startswith("kos_plugins_simpleio") else WORKERS
        try:
            session.run("coverage", "run", "-m", "pytest", *workers, folder, *session.posargs)
        except nox.command.CommandFailed:
            failed.append(folder)  # the figures are still worth seeing
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")
    if failed:
        session.error(f"tests failed in {', '.join(failed)}")


@nox.session(python=PYTHONS[0], default=False)
def benchmarks(session: nox.Session) -> None:
    """Speed against plain rpyc (and start-up against Pyro5) in the same run, not part of
    the default run; with ``-- peers`` the comparison of calls with Pyro5 and a minimal
    msgpack RPC instead.
    """
    session.install(*(f"./{d}" for d in DISTRIBUTIONS), *BENCHMARK_PEERS)
    if session.posargs[:1] == ["peers"]:
        session.run("python", "benchmarks/peers.py", *session.posargs[1:])
    else:
        session.run("python", "benchmarks/run.py", *session.posargs)
