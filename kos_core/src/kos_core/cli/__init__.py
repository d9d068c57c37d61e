"""The ``kos`` command line.

Exit codes: 0 ok, 1 runtime failure, 2 usage error (bad arguments, bad setup file).
Errors are one line on stderr. rpyc and the kernel are imported only by the
commands that need them, so ``kos --help`` stays fast.
"""

from __future__ import annotations

from kos_core.cli.app import cli, main
from kos_core.cli.errors import reports_errors

#: ``reports_errors`` is public: a plugin may use it on functions of its own; its commands
#: get it from the ``kos`` group without asking.
__all__ = ["cli", "main", "reports_errors"]
