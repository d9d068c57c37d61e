"""``python -m kos_core.cli``: the same as the ``kos`` command."""

from kos_core.cli.app import main

main()
