"""Example 9: ``examples/network_kp.py``'s ``Network``, unchanged, as the plugin ``foo``
(started by the kernel from a setup file's ``file:``) and as a KP submitted with
``kos kp submit``, both serving ``foo`` at the same kernel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import kos_core
from kos_core.errors import NameNotFound
from kos_core.testing import KosEnv, StartKernel, descendants_of, wait_for
from kos_helpers import Cli
from kp_helpers import row

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "network_kp.py"


def load_example() -> ModuleType:
    """The example as a module of this process (for its ``NetworkAPI`` interface)."""
    spec = importlib.util.spec_from_file_location("network_kp", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bound(kos: kos_core.Kos, path: str, interface: type) -> bool:
    try:
        kos.lookup(path, interface)
    except NameNotFound:
        return False
    return True


def test_network_serves_as_a_plugin_and_as_a_kp(
    kos_env: KosEnv, start_kernel: StartKernel, cli: Cli
) -> None:
    network = load_example()
    kos_env.write_setup(f"[foo]\nfile: {EXAMPLE}\n")
    kernel = start_kernel()
    plugin_pid = kernel.wait_plugin("foo", services=["foo"])
    submitted = cli("kp", "submit", f"{EXAMPLE}:Network")
    assert submitted.returncode == 0, str(submitted)
    kp_id = submitted.stdout.strip()
    with kos_core.connect() as kos:
        as_plugin = kos.lookup("foo", network.NetworkAPI)
        assert as_plugin.Where() == ("plugin", kos_env.kernel, "plugins/foo")
        assert as_plugin.Pid() == plugin_pid
        # submit returns once the station took the KP; its __main__ binds a moment later
        wait_for(lambda: bound(kos, f"kps/{kp_id}/foo", network.NetworkAPI), 10, "the KP's bind")
        as_kp = kos.lookup(f"kps/{kp_id}/foo", network.NetworkAPI)
        assert as_kp.Where() == ("kp", kos_env.kernel, "")
        found = row(kos, kp_id)
        assert found is not None and found["class"] == "Network"
        assert as_kp.Pid() == found["pid"] != plugin_pid
        assert {plugin_pid, found["pid"]} <= descendants_of(kernel.pid)
    log = (kos_env.state_dir / kos_env.kernel / "logs" / f"kp-{kp_id}.log").read_text()
    assert "confined: landlock" in log  # the same class, confined as a KP
