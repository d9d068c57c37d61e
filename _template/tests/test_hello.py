"""The hello plugin against a real kernel (the start_kernel fixture comes with kos-core)."""

from __future__ import annotations

import pytest
from kos_plugins_hello import Greeter, NoName

from kos_core.testing import StartKernel


def test_hello_through_a_kernel(start_kernel: StartKernel) -> None:
    kernel = start_kernel(environ={"KOS_LOAD_PLUGINS": "hello"})  # stopped after the test
    kernel.wait_plugin("hello", services=["hello"])
    with kernel.connect() as kos:
        greeter = kos.lookup("hello", Greeter)
        assert greeter.Hello("world") == "hello, world"
        assert greeter.Count() == 1
        with pytest.raises(NoName):
            greeter.Hello("")
    assert kernel.stop() == 0


def test_the_greeting_comes_from_the_setup_file(start_kernel: StartKernel) -> None:
    kernel = start_kernel(
        setup="[hello]\ngreeting: good morning\n", environ={"KOS_LOAD_PLUGINS": "hello"}
    )
    kernel.wait_plugin("hello", services=["hello"])
    with kernel.connect() as kos:
        assert kos.lookup("hello", Greeter).Hello("world") == "good morning, world"
    assert kernel.stop() == 0
