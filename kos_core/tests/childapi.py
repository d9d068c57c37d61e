"""A toy factory child for the tests of kos_core's factory-children machinery.

Only kos-core may be imported here. The module is used three ways:

* imported by the tests, for the ``ChildTest.Counter`` interface;
* as ``module:callable`` target of a :class:`~kos_core.pluginlib.ChildFactory`
  (``childapi:make_counter``; this folder must be on ``PYTHONPATH``);
* run as a script (``python childapi.py ...``): as a
  :func:`~kos_core.pluginlib.spawnserver` child (``childapi.py -f FD ARGS...``), or
  as a parent process that makes children and prints what it made
  (``childapi.py parent-spawn`` / ``childapi.py parent-factory N``), so a test can
  kill that parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from kos_core import pluginlib
from kos_core.interface import Interface

SCRIPT = Path(__file__).resolve()
TESTS_DIR = SCRIPT.parent
TARGET = "childapi:make_counter"
WIRE_NAME = "ChildTest.Counter"
#: The child's flag option, when a test asks ``spawnserver`` for another one.
FLAG_ENV = "CHILDAPI_FLAG"
#: ``garbage``: the child writes something that is not an SBH, then waits forever.
MODE_ENV = "CHILDAPI_MODE"
#: A directory: each ``make_counter`` call appends ``[time.monotonic(), args]``, as a
#: JSON line, to a file there named after the calling process's pid.
MADE_ENV = "CHILDAPI_MADE_DIR"


class Counter(Interface, wire_name=WIRE_NAME):
    """A counter served by a factory child, one per client."""

    def Incr(self) -> int:
        """Add one and return the new value."""
        raise NotImplementedError

    def Pid(self) -> int:
        """The serving process's pid."""
        raise NotImplementedError

    def ParentPid(self) -> int:
        """The serving process's parent pid."""
        raise NotImplementedError

    def Argv(self) -> list[str]:
        """The serving process's ``sys.argv`` (or the factory arguments of a forked child)."""
        raise NotImplementedError

    def Close(self) -> None:
        """End this child: the connection ends after the reply and the process exits."""
        raise NotImplementedError


class CounterImpl:
    """Implements :class:`Counter`."""

    def __init__(self, argv: list[str]) -> None:
        self.value = 0
        self.argv = list(argv)

    def Incr(self) -> int:
        self.value += 1
        return self.value

    def Pid(self) -> int:
        return os.getpid()

    def ParentPid(self) -> int:
        return os.getppid()

    def Argv(self) -> list[str]:
        return list(self.argv)

    def Close(self) -> None:
        pluginlib.end_connection()


def make_counter(*args: str) -> CounterImpl:
    """The fork server's target.

    ``make_counter("fail")`` fails to build its object. ``make_counter("wait-for",
    PATH)`` first waits until the Unix socket listening at ``PATH`` goes away (it
    connects and waits for the connection to end), so a test decides when it is built.
    """
    made_dir = os.environ.get(MADE_ENV)
    if made_dir:
        with open(Path(made_dir) / str(os.getpid()), "a") as made:
            made.write(json.dumps([time.monotonic(), list(args)]) + "\n")
    if args[:1] == ("fail",):
        raise RuntimeError("make_counter was asked to fail")
    if args[:1] == ("wait-for",):
        with socket.socket(socket.AF_UNIX) as gate, contextlib.suppress(OSError):
            gate.connect(args[1])
            gate.recv(1)
    return CounterImpl([str(a) for a in args])


# -------------------------------------------------------------------- as a script


def _serve(argv: list[str]) -> None:
    flag = os.environ.get(FLAG_ENV, "-f")
    if os.environ.get(MODE_ENV) == "garbage":
        fd = int(argv[argv.index(flag) + 1])
        os.write(fd, b"this is not a string binding handle\n")
        threading.Event().wait()
    pluginlib.serve_child(CounterImpl(argv), Counter, flagoption=flag)


def _parent_spawn() -> None:
    sbh, pid, _pids = pluginlib.spawnserver(str(SCRIPT), "child-of-parent")
    print(json.dumps({"sbh": sbh, "pid": pid}), flush=True)
    threading.Event().wait()


def _parent_factory(count: int) -> None:
    factory = pluginlib.ChildFactory(TARGET, WIRE_NAME)
    made = [factory.spawn(f"child-{i}") for i in range(count)]
    print(json.dumps({"sbhs": [m[0] for m in made], "pids": [m[1] for m in made]}), flush=True)
    threading.Event().wait()


def main(argv: list[str]) -> None:
    """Run as a spawnserver child, or as a parent (see the module's docstring)."""
    if argv[1:2] == ["parent-spawn"]:
        _parent_spawn()
    elif argv[1:2] == ["parent-factory"]:
        _parent_factory(int(argv[2]))
    else:
        _serve(argv)


if __name__ == "__main__":
    import childapi  # one copy of the interface: the importable module's

    childapi.main(sys.argv)
