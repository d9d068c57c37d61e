"""KP migration through the world: kernels on other hosts (``127.0.0.x``, each with its
own runtime directory) receive a KP from its station, which dials them as a station
(its world certificate, the token ``station``), never from the KP itself.
"""

from __future__ import annotations

import datetime
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kos_core import _rpc
from kos_core._kp import codec
from kos_core._kp.migration import station_link
from kos_core._net import connection_file, tls
from kos_core.errors import (
    AuthenticationFailed,
    PermissionDenied,
    RemoteError,
    ServiceUnavailable,
)
from kos_core.kernel_api import Kernel, KPTraveller
from kos_core.testing import descendants_of, make_env, process_ended, running_kernel, wait_for
from kp_helpers import HOPPER, HOPPER_BLOB, reported, row, submit, wait_ended, write_kp
from world_helpers import World

SETUP = "[kp-access]\nlookup: bitbucket\n"

#: tries moves that must fail (an unknown kernel, one that refuses), then stays
STAYER = """
from kos_core.errors import MigrationError

def attempt(kos, kernel):
    try:
        kos.migrate(kernel)
        return ["moved", ""]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]

class Stayer:
    def __init__(self):
        self.count = 1

    def __main__(self, kos):
        outcome = {"unknown": attempt(kos, "nosuchk"), "refused": attempt(kos, kos.args[0])}
        self.count += 1
        outcome.update(count=self.count, pid=os.getpid(), id=kos.id)
        report(kos, "stayer", outcome)
        time.sleep(60)
"""

#: moves to ``args[0]``, where it waits (12 s at most) for a file ``go`` in its working
#: directory before it starts, and then fails to start if ``args[1]`` is ``fail``
HELD = """
if os.environ.get("KOS_KERNEL") == sys.argv[1]:  # at the kernel it moves to
    for _ in range(240):
        if os.path.exists("go"):
            break
        time.sleep(0.05)
    if sys.argv[2] == "fail":
        raise RuntimeError("this KP will not start here")

class Held:
    def __main__(self, kos):
        if not hasattr(self, "left"):
            self.left = kos.id
            report(kos, "home-" + kos.args[2], {"id": kos.id, "pid": os.getpid()})
            kos.migrate(kos.args[0])
        report(kos, "arrived-" + kos.args[2], {"id": kos.id, "from": self.left})
        time.sleep(60)
"""

#: stores that it ran, at the kernel it runs at
QUIET = """
class Quiet:
    def __main__(self, kos):
        report(kos, "quiet", kos.name)
        time.sleep(60)
"""


def two_hosts(world: World, away_setup: str = SETUP) -> None:
    """Kernel ``ka`` on 127.0.0.2 and ``kb`` on 127.0.0.3, both running bitbucket,
    ``ka``'s cache knowing ``kb``.
    """
    world.start("ka", setup=SETUP)
    world.start("kb", setup=away_setup)
    for name in ("ka", "kb"):
        world.wait_plugin(name, "bitbucket", ["bitbucket"])
    assert world.envs["ka"].runtime_dir != world.envs["kb"].runtime_dir
    wait_for(lambda: "kb" in world.names_seen_by("ka"), 10, "ka's cache to know kb")


def test_a_kp_moves_to_a_kernel_on_another_host_and_its_old_station_keeps_nothing(
    world: World, tmp_path: Path
) -> None:
    two_hosts(world)
    path = write_kp(tmp_path, "hopper", HOPPER)
    with world.client("ka") as a, world.client("kb") as b:
        first = submit(a, path, "Hopper", "kb")
        there = reported(b, "away")
        went = reported(a, "home")
        assert went["id"] == first and there["id"] != first
        assert there["count"] == 2 and there["visits"] == ["ka", "kb"]
        assert there["args"] == ["kb"] and there["blob"] == HOPPER_BLOB
        assert b.lookup("bitbucket").Get("hopper-tag") == b"\x00\xffkp"  # B's bitbucket
        # A keeps nothing: no process, no names
        ended = wait_ended(a, first)
        assert ended["pid"] == 0 and ended["last_exit"] == f"migrated to kb (KP {there['id']})"
        assert process_ended(went["pid"])
        assert went["pid"] not in descendants_of(world.kernels["ka"].pid)
        assert there["pid"] in descendants_of(world.kernels["kb"].pid)
        assert first not in a.list("kps")
        assert "report-after-migrate" not in a.lookup("bitbucket").List()
    listed = json.loads(world.cli("kb", "kp", "list", "--json").stdout)["kps"]
    assert [(k["id"], k["state"], k["origin"]) for k in listed] == [
        (there["id"], "running", f"from ka (KP {first})")  # the sender its certificate names
    ]


def test_an_unknown_kernel_or_one_that_refuses_leaves_the_kp_at_home(
    world: World, tmp_path: Path
) -> None:
    two_hosts(world, away_setup=SETUP + "accept: no\n")
    path = write_kp(tmp_path, "stayer", STAYER)
    with world.client("ka") as a, world.client("kb") as b:
        kp_id = submit(a, path, "Stayer", "kb")
        report = reported(a, "stayer")
        assert report["unknown"] == ["MigrationError", "no kernel 'nosuchk' here or in the world"]
        assert report["refused"] == [
            "MigrationError",
            "kernel 'kb' accepts no KPs from other kernels ([kp-access] accept: no)",
        ]
        assert report["count"] == 2 and report["id"] == kp_id  # it went on, at home
        found = row(a, kp_id)
        assert found is not None and found["state"] == "running"
        assert report["pid"] in descendants_of(world.kernels["ka"].pid)
        assert b.kernel.KPs() == []  # nothing arrived at B


def _arriving(kos: Any) -> str | None:
    """The id of a KP starting at ``kos``'s kernel (arriving there), if there is one."""
    return next((str(values[0]) for values in kos.kernel.KPs() if values[2] == "starting"), None)


def _kill_while_held(world: World, kos_b: Any, kp_id: str) -> str:
    """``kos kp kill KP_ID`` at ka while the KP is held at kb before it starts; release
    it once ka has deferred the kill; what the command printed.
    """
    arriving = wait_for(lambda: _arriving(kos_b), 10, f"KP {kp_id} to be starting at kb")
    deferred = f"KP {kp_id} (Held) is moving: killed by the operator if it stays"
    with ThreadPoolExecutor(1) as pool:
        killing = pool.submit(world.cli, "ka", "kp", "kill", kp_id, timeout=60)
        wait_for(lambda: deferred in world.kernels["ka"].log(), 15, "ka to defer the kill")
        assert not killing.done()  # the kill waits for the handover
        (world.envs["kb"].state_dir / "kb" / "kps" / arriving / "go").touch()
        return killing.result().stdout.strip()


def test_a_kill_during_a_migration_waits_for_the_handover(world: World, tmp_path: Path) -> None:
    """Killed at A while B starts it: if B takes it, it has moved and runs on at B (the
    kill says where it went); if B cannot start it, A kills it as asked.
    """
    two_hosts(world)
    path = write_kp(tmp_path, "held", HELD)
    with world.client("ka") as a, world.client("kb") as b:
        # B takes it
        moving = submit(a, path, "Held", "kb", "ok", "one")
        home = reported(a, "home-one")
        killed = _kill_while_held(world, b, moving)
        arrived = reported(b, "arrived-one")
        assert arrived["from"] == moving
        assert killed == f"{moving}: migrated to kb (KP {arrived['id']})"
        assert wait_ended(a, moving)["last_exit"] == f"migrated to kb (KP {arrived['id']})"
        assert process_ended(home["pid"])
        moved = row(b, arrived["id"])
        assert moved is not None and moved["state"] == "running"
        # B cannot start it: killed at A, as asked
        failing = submit(a, path, "Held", "kb", "fail", "two")
        home = reported(a, "home-two")
        assert _kill_while_held(world, b, failing) == f"{failing}: ended"
        assert wait_ended(a, failing)["last_exit"] == "killed by the operator"
        assert process_ended(home["pid"])
        assert [values[2] for values in b.kernel.KPs()] == ["running", "ended"]
        assert "report-arrived-two" not in b.lookup("bitbucket").List()


def _address(world: World, kernel: str) -> str:
    with world.client("ka") as a:
        return next(str(r[2]) for r in a.kernel.World() if r[0] == kernel)


def _presenting(world: World, name: str, authority: tls.Authority | None = None) -> Any:
    """A client context presenting ``name``'s certificate: the world's (written by
    :meth:`World.issue`), or one ``authority`` issued; trusting the world's authority.
    """
    ca = (world.tls_dir / "ca.pem").read_text()
    if authority is None:
        cert, key = world.tls_dir / f"{name}.pem", world.tls_dir / f"{name}-key.pem"
        return tls.presenting_context(ca, str(cert), str(key))
    path = world.base / f"{name}-stranger.pem"
    path.write_bytes(tls.write_pem_pair(authority.issue(name, [], datetime.timedelta(days=1))))
    return tls.presenting_context(ca, str(path))


def test_a_station_credential_hands_over_a_kp_and_nothing_else(
    world: World, tmp_path: Path
) -> None:
    two_hosts(world)
    address = _address(world, "kb")
    link = station_link("kb", address, _presenting(world, "ka"))
    kernel: Any = _make_kernel(link)
    try:
        with pytest.raises(PermissionDenied, match="station of kernel 'ka'"):
            kernel.Lookup("bitbucket")
        with pytest.raises(PermissionDenied):
            kernel.List("")
        with pytest.raises(PermissionDenied):
            kernel.SubmitKP("q.py:Quiet", QUIET, [], "")
        with pytest.raises(PermissionDenied):
            kernel.KPs()
        with pytest.raises(RemoteError, match="PermissionDenied"):
            kernel.Info()  # declares no PermissionDenied: it arrives as a remote error
        source = write_kp(tmp_path, "q", QUIET).read_text()
        claimed: KPTraveller = ("q.py:Quiet", source, [], "", "from kz (KP 0badc0de)")
        new_id = kernel.ReceiveKP(claimed, codec.encode_state({}))
    finally:
        link.close()
    with world.client("kb") as b:
        assert reported(b, "quiet") == "kb"
        moved = row(b, new_id)
        assert moved is not None and moved["origin"] == "from ka (KP 0badc0de)"
    # refused: a certificate of another authority (at TLS), one of a kernel the world
    # does not know
    world.issue("kz")
    refused = [
        (_presenting(world, "ka", tls.new_authority("kos world")), ServiceUnavailable),
        (_presenting(world, "kz"), AuthenticationFailed),
    ]
    for context, error in refused:
        bad = station_link("kb", address, context)
        try:
            with pytest.raises(error):
                _make_kernel(bad).Lookup("bitbucket")
        finally:
            bad.close()
    with world.client("kb") as b:
        assert len(b.kernel.KPs()) == 1  # only the KP handed over above


def _make_kernel(link: Any) -> Any:
    return _rpc.make_proxy(Kernel, link)


def test_only_a_kernel_in_a_world_takes_a_station_credential(world: World) -> None:
    world.issue("ka")
    env = make_env("alone")
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.environ().items():
                patch.setenv(key, value)
            args = ("--listen", "127.0.0.9:0")
            with running_kernel(env, *args, environ={"KOS_LOAD_PLUGINS": ""}):
                info = connection_file.read("alone")
                assert info is not None and info.tcp
                context = _presenting(world, "ka")
                context.load_verify_locations(cadata=info.ca)  # to reach it at all
                link = station_link("alone", info.tcp.removeprefix("tcp:"), context)
                try:
                    with pytest.raises(AuthenticationFailed, match="credentials refused"):
                        _make_kernel(link).Lookup("")
                finally:
                    link.close()
    finally:
        shutil.rmtree(env.runtime_dir.parent, ignore_errors=True)
