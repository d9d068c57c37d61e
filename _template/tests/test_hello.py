"""The hello plugin, alone through the real wire and through a real kernel (the
``served`` helper and the ``start_kernel`` fixture come with kos-core)."""

from __future__ import annotations

import pytest
from kos_plugins_hello import Greeter, NoName
from kos_plugins_hello.plugin import Greeter as GreeterService

from kos_core.testing import StartKernel, served


def test_the_service_against_its_interface_without_a_kernel() -> None:
    with served(GreeterService("hi"), Greeter) as greeter:
        assert greeter.Hello("world") == "hi, world"
        with pytest.raises(NoName):
            greeter.Hello("")
        with pytest.raises(TypeError):
            greeter.Hello(42)  # type: ignore[arg-type]  # checked against the interface
        assert greeter.Count() == 1


def test_hello_through_a_kernel(start_kernel: StartKernel) -> None:
    kernel = start_kernel()  # boots this distribution's plugin alone; stopped after the test
    kernel.wait_plugin("hello", services=["hello"])
    with kernel.connect() as kos:
        assert kos.list() == ["hello", "plugins"]  # no other installed plugin booted
        greeter = kos.lookup("hello", Greeter)
        assert greeter.Hello("world") == "hello, world"
        assert greeter.Count() == 1
        with pytest.raises(NoName):
            greeter.Hello("")
    assert kernel.stop() == 0


def test_the_greeting_comes_from_the_setup_file(start_kernel: StartKernel) -> None:
    kernel = start_kernel(setup="[hello]\ngreeting: good morning\n")
    kernel.wait_plugin("hello", services=["hello"])
    with kernel.connect() as kos:
        assert kos.lookup("hello", Greeter).Hello("world") == "good morning, world"
    assert kernel.stop() == 0
