"""The kernel's namespace as clients see it: bind, unbind, ownership, contexts."""

from __future__ import annotations

import pytest

import kos_core
from kos_core import Context
from kos_core.errors import NameAlreadyBound, NameNotFound, NotAContext, UsageError
from kos_core.kernel_api import Kernel as KernelInterface
from kos_core.testing import KernelProcess, KosEnv, wait_for
from kos_plugins_bitbucket import BitBucket


@pytest.fixture
def kos_env(shared_kos_env: KosEnv) -> KosEnv:
    """The tests of this module share one kernel (none of them stops it)."""
    return shared_kos_env


@pytest.fixture
def bb_kernel(shared_bb_kernel: KernelProcess) -> KernelProcess:
    """The module's shared kernel."""
    return shared_bb_kernel


def test_a_client_binding_lives_as_long_as_its_connection(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as reader:
        _, _, sbh = reader.kernel.Lookup("bitbucket")
        with kos_core.connect() as binder:
            assert binder.bind("alias", "BitBucketAPI.BitBucket", sbh) == "alias"
            alias = reader.lookup("alias", BitBucket)
            alias.Set("via", b"alias")
            assert reader.lookup("bitbucket").Get("via") == b"alias"  # the same object
            with pytest.raises(NameAlreadyBound):
                binder.bind("alias", "BitBucketAPI.BitBucket", sbh)
        wait_for(lambda: "alias" not in reader.list(), 10, "the alias to go with its connection")
        with pytest.raises(NameNotFound):
            reader.lookup("alias")
        assert "bitbucket" in reader.list()


def test_a_client_cannot_unbind_what_others_bound(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        with pytest.raises(NameNotFound):
            kos.unbind("bitbucket")
        with pytest.raises(NameNotFound):
            kos.unbind("plugins/bitbucket/kos")
        with pytest.raises(UsageError):
            kos.unbind("")
        assert "bitbucket" in kos.list()
        kos.lookup("bitbucket").Set("safe", b"yes")


def test_bind_refuses_what_is_not_an_sbh(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        for bad in ("", "http://example.com/#x", "kos+unix:///tmp/x.sock", "not an sbh"):
            with pytest.raises(UsageError):
                kos.bind("bad", "BitBucketAPI.BitBucket", bad)
        assert "bad" not in kos.list()


def test_contexts_and_lookups(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        top = kos.get_namespace()
        assert {"bitbucket", "plugins"} <= set(top.list())
        plugins = kos.lookup("plugins")
        assert isinstance(plugins, Context)
        assert "bitbucket" in plugins.list()
        private = plugins.lookup("bitbucket")
        assert sorted(private.list()) == ["kos", "world"]
        # the links lead back to the top: a lookup through them reaches the service
        assert isinstance(kos.lookup("/plugins/bitbucket/world/bitbucket"), BitBucket)
        with pytest.raises(NameNotFound):
            kos.lookup("plugins/nosuch")
        with pytest.raises(NotAContext):
            kos.list("bitbucket")
        with pytest.raises(NotAContext):
            kos.lookup("bitbucket/inside")
        with pytest.raises(UsageError):
            kos.lookup("bitbucket", KernelInterface)  # not that interface
        with pytest.raises(UsageError):
            kos.lookup("../etc")
