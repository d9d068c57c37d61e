"""A KP's process: ``python -I -m kos_core._kp.runner``, started by its station in the
KP's working directory.

It reads the package its station left there (the KP's source, class, arguments and,
after a migration, its state), confines itself (:mod:`.confine`) before any of the
KP's code runs, rebuilds the KP object, says ``R`` on the status pipe and calls
``obj.__main__(kos)`` with the bastion. If it cannot confine itself it says why on
the pipe and exits 3 without running the KP.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import os
import signal
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from kos_core import _rpc
from kos_core._client import Kos
from kos_core._kernel import access
from kos_core._kp import codec, confine
from kos_core._kp.bastion import KPKos
from kos_core._kp.station import PACKAGE, STATUS_ENV
from kos_core._net import wire
from kos_core._os import processes

EXIT_CANNOT_CONFINE = 3


def _say(fd: int, line: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (" ".join(line.split())[:1000] + "\n").encode("utf-8", "replace"))
        os.close(fd)


def rebuild(source: str, filename: str, classname: str, state: bytes | None) -> Any:
    """The KP object: its module's source run as module ``__kp__``, then the class
    made with no arguments, or (after a migration) given its attributes back without
    calling ``__init__``.
    """
    # tracebacks show the KP's lines, which its process cannot read from the file
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("__kp__")
    module.__file__ = filename
    sys.modules["__kp__"] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    cls = module.__dict__.get(classname)
    if not isinstance(cls, type):
        raise LookupError(f"{filename} has no class {classname!r}")
    if state is None:
        return cls()
    obj: Any = object.__new__(cls)
    obj.__dict__.update(codec.decode_state(state))
    return obj


def main() -> None:
    """Run the KP the station left in the working directory."""
    status_fd = int(os.environ.pop(STATUS_ENV))
    package = json.loads(Path(PACKAGE).read_text())
    os.unlink(PACKAGE)
    credential = access.take_credential() or ""
    plan = package["plan"]
    try:
        confined = confine.apply(confine.Plan(**plan)) if plan else "UNCONFINED (--unconfined)"
    except confine.CannotConfine as exc:
        _say(status_fd, f"!cannot confine the KP: {exc}")
        sys.exit(EXIT_CANNOT_CONFINE)
    processes.die_with_parent(signal.SIGKILL)  # after a change of uid, which disarms it
    kp_id = package["id"]
    print(f"kp {kp_id}: {package['class']} from {package['filename']}; {confined}", flush=True)
    state = package["state"].encode("ascii") if package["state"] is not None else None
    sys.argv = [package["filename"], *package["args"]]
    try:
        obj = rebuild(package["source"], package["filename"], package["class"], state)
        link = _rpc.ClientConnection(
            wire.Address.parse(package["address"]), credential, "the station"
        )
        link.connect()
    except BaseException as exc:
        _say(status_fd, f"!{type(exc).__name__}: {exc}")
        traceback.print_exc()
        sys.exit(1)
    kos = Kos(package["kernel"], link)
    kos.socket_dir = os.getcwd()  # the runtime directory is not the KP's to write
    bastion = KPKos(kos, kp_id, list(package["args"]), obj)
    _say(status_fd, "R")
    try:
        obj.__main__(bastion)
    finally:
        bastion.close()


if __name__ == "__main__":
    main()
