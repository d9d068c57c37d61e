"""The world: kernels on many hosts sharing one directory of names, kept in etcd.

Modules, one job each:

* :mod:`.etcd` — the etcd client (``etcd3gw``: key-value, leases, transactions) and
  the watch stream, behind a few typed functions; failures become
  :class:`~kos_core.errors.WorldUnavailable`.
* :mod:`.layout` — the keys and values under the world's prefix, and the checks a
  value read from etcd must pass before anything uses it.
* :mod:`.membership` — joining: the kernel's lease, its record (the name taken by a
  transaction), keep-alive, rejoining.
* :mod:`.exports` — the names a kernel publishes (``export: yes`` plugins).
* :mod:`.cache` — the watched copy of the whole world that lookups are answered from.
* :mod:`.member` — the four above put together for one kernel.
* :mod:`.etcd_process` — a real ``etcd`` on loopback, for tests and benchmarks.
"""
