"""Everything kos takes from rpyc, behind one narrow seam: the only package importing it.

* :mod:`~kos_core._rpc.rpyc_seam.peer` — :class:`RpcPeer`, the serving end of a kos
  connection (an rpyc connection that carries only kos messages);
* :mod:`~kos_core._rpc.rpyc_seam.codec` — rpyc's messages as bytes (brine), which imports
  rpyc only for values kos never sends, so the client's end
  (:mod:`~kos_core._rpc.client_peer`) never loads rpyc.
"""
