"""The client side of kos: a connection to a kernel and what goes through it.

* :mod:`.kos` — :class:`Kos` (look up, list, bind, control plugins, reload, watch),
  :class:`Context`, :func:`connect`, :func:`run_kp`;
* :mod:`.link` — dialling a kernel from its connection file (:func:`kernel_link`);
* :mod:`.serving` — serving objects of this process as services (:class:`LocalServices`,
  which a :class:`Kos` holds);
* :mod:`.plugin_control` — starting, stopping, restarting plugins and waiting for the outcome;
* :mod:`.watch` — following bind and unbind events.

Importing it imports rpyc: :mod:`kos_core` imports it on first use only.
"""

from __future__ import annotations

from kos_core._client.kos import Context, Kos, connect, run_kp
from kos_core._client.link import kernel_link

__all__ = ["Context", "Kos", "connect", "kernel_link", "run_kp"]
