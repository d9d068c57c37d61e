"""The world: kernels on many hosts sharing one directory of names, kept in etcd.

Modules, one job each:

* :mod:`.url` — the world's ``etcd://`` / ``etcds://`` URL, parsed and checked.
* :mod:`.etcd` — the etcd client (``etcd3gw``: key-value, leases, transactions) and
  the watch stream, behind a few typed functions, as the world's user if it has one.
* :mod:`.etcd_errors` — what etcd's failures mean: each becomes a
  :class:`~kos_core.errors.WorldUnavailable`; those retrying cannot cure (TLS, a
  password, a permission) are ``EtcdDenied``.
* :mod:`.layout` — the keys and values under the world's prefix, and the checks a
  value read from etcd must pass before anything uses it.
* :mod:`.membership` — joining: the kernel's lease, its record (the name taken by a
  transaction), keep-alive, rejoining.
* :mod:`.exports` — the names a kernel publishes (``export: yes`` plugins).
* :mod:`.cache` — the watched copy of the whole world that lookups are answered from.
* :mod:`.member` — the four above put together for one kernel.
* :mod:`.etcd_process` — a real ``etcd`` on loopback (plain, TLS, or a cluster), for
  tests and benchmarks.
"""
