"""The hello plugin against a real kernel (the kos_env fixture comes with kos-core)."""

from __future__ import annotations

import pytest
from kos_plugins_hello import Greeter, NoName

from kos_core.testing import KernelProcess, KosEnv


def test_hello_through_a_kernel(kos_env: KosEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOS_LOAD_PLUGINS", "hello")
    kernel = KernelProcess(kos_env)
    try:
        kernel.wait_ready()
        kernel.wait_plugin("hello", services=["hello"])
        with kernel.connect() as kos:
            greeter = kos.lookup("hello", Greeter)
            assert greeter.Hello("world") == "hello, world"
            assert greeter.Count() == 1
            with pytest.raises(NoName):
                greeter.Hello("")
    finally:
        assert kernel.stop() == 0
