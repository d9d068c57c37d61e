"""The bitbucket plugin through a real kernel: from Python, from the CLI, under load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kos_core
from kos_core.errors import RemoteError
from kos_core.testing import KernelProcess, KosEnv, StartKernel
from kos_helpers import Cli, Result, assert_one_line_error, dedent, kos_environ
from kos_plugins_bitbucket import BitBucket, BucketFull, NotFound


def test_round_trip_from_python(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        assert isinstance(bb, BitBucket)  # a typed proxy of the interface
        assert bb.List() == []
        bb.Set("k", b"v")
        assert bb.Get("k") == b"v"
        binary = bytes(range(256))
        bb.Set("bin", binary)
        assert bb.Get("bin") == binary
        assert bb.List() == ["bin", "k"]
        bb.Delete("k")
        assert bb.List() == ["bin"]
        with pytest.raises(NotFound) as info:
            bb.Get("k")
        assert "k" in str(info.value)
        with pytest.raises(NotFound):
            bb.Delete("k")
        with pytest.raises(BucketFull):
            bb.Set("huge", b"x" * 102401)  # the default capacity is 102400 bytes
        with pytest.raises(BucketFull):  # far too big: one clear error, not a broken link
            bb.Set("huge", b"x" * (20 * 1024 * 1024))
        assert bb.List() == ["bin"]
        # exactly the rest of the default capacity (names count: "bin" and "rest")
        rest = 102400 - len("bin") - 256 - len("rest")
        bb.Set("rest", b"r" * rest)
        assert len(bb.Get("rest")) == rest
        with pytest.raises(BucketFull):
            bb.Set("more", b"!")


def test_a_second_client_sees_the_same_bucket(bb_kernel: KernelProcess) -> None:
    with kos_core.connect() as first, kos_core.connect() as second:
        first.lookup("bitbucket").Set("shared", b"across clients")
        assert second.lookup("bitbucket").Get("shared") == b"across clients"


def test_round_trip_from_the_cli(bb_kernel: KernelProcess, cli: Cli) -> None:
    def ok(*args: str) -> Result:
        result = cli(*args)
        assert result.returncode == 0, str(result)
        assert result.stderr == "", str(result)
        return result

    assert ok("call", "bitbucket", "Set", "greeting", "hello").stdout == ""
    assert ok("call", "bitbucket", "Get", "greeting").stdout == "hello"  # raw bytes
    ok("call", "bitbucket", "Set", "other", "x")
    assert ok("call", "bitbucket", "List").stdout.split() == ["greeting", "other"]
    with kos_core.connect() as kos:  # the CLI sent bytes, as the interface declares
        assert kos.lookup("bitbucket").Get("greeting") == b"hello"
    assert ok("call", "bitbucket", "Delete", "greeting").stdout == ""
    assert ok("call", "bitbucket", "List").stdout.split() == ["other"]

    missing = cli("call", "bitbucket", "Get", "greeting")
    assert_one_line_error(missing, 1, "NotFound", "greeting")
    assert missing.stdout == ""
    assert_one_line_error(cli("call", "bitbucket", "Delete", "greeting"), 1, "NotFound")


def small_bucket(kos_env: KosEnv, start_kernel: StartKernel, capacity: int) -> KernelProcess:
    """A kernel whose bitbucket has ``capacity`` bytes, set through a setup file."""
    kos_env.write_setup(f"[bitbucket]\nargs: --capacity {capacity}\n")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    return kernel


def test_bucket_full_at_exactly_the_capacity(kos_env: KosEnv, start_kernel: StartKernel) -> None:
    small_bucket(kos_env, start_kernel, 10)
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("x", b"012345678")  # exactly the capacity fits: 1 byte of name, 9 of value
        with pytest.raises(BucketFull):
            bb.Set("y", b"")  # one byte more (a name alone) does not
        assert bb.List() == ["x"]
        with pytest.raises(BucketFull):
            bb.Set("x", b"0123456789")  # nor does growing the value past it
        assert bb.Get("x") == b"012345678"  # a refused Set keeps the old value
        bb.Set("x", b"abc")  # replacing frees the old size
        bb.Set("y", b"12345")
        with pytest.raises(BucketFull):
            bb.Set("z", b"")
        bb.Delete("y")  # deleting frees it too
        bb.Set("z", b"54321")
        assert sorted((n, bb.Get(n)) for n in bb.List()) == [("x", b"abc"), ("z", b"54321")]


def test_bucket_full_from_the_cli(kos_env: KosEnv, start_kernel: StartKernel, cli: Cli) -> None:
    small_bucket(kos_env, start_kernel, 10)
    assert cli("call", "bitbucket", "Set", "x", "012345678").returncode == 0
    assert_one_line_error(cli("call", "bitbucket", "Set", "y", "z"), 1, "BucketFull")
    assert cli("call", "bitbucket", "List").stdout.split() == ["x"]


WRITER = dedent(
    """
    import random
    import sys

    import kos_core
    from kos_plugins_bitbucket import BucketFull

    seed, count = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    stored = refused = 0
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        for _ in range(count):
            try:
                bb.Set(f"k{rng.randrange(12)}", bytes([65 + seed]) * rng.randrange(120))
                stored += 1
            except BucketFull:
                refused += 1
    print(stored, refused)
    """
)


def test_capacity_holds_under_concurrent_clients(
    kos_env: KosEnv, start_kernel: StartKernel, tmp_path: Path
) -> None:
    capacity = 500
    small_bucket(kos_env, start_kernel, capacity)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = kos_environ(kos_env)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(seed), "300"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for seed in range(4)
    ]
    stored = refused = 0
    try:
        for writer in writers:
            out, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
            ok, full = map(int, out.split())
            stored, refused = stored + ok, refused + full
    finally:
        for writer in writers:
            if writer.returncode is None:
                writer.kill()
                writer.wait()
    assert stored > 0
    assert refused > 0  # the bucket really was full at times

    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        values = {name: bb.Get(name) for name in bb.List()}
        total = sum(len(name) + len(v) for name, v in values.items())  # names count
        assert total <= capacity
        for value in values.values():  # no value mixes two writers' bytes
            assert len(set(value)) <= 1
        if total == capacity:  # full to the byte: free one entry for the probe's name
            name = next(iter(values))
            bb.Delete(name)
            total -= len(name) + len(values[name])
        # what the bucket accounts equals what it holds: exactly the rest fits
        bb.Set("p", b"p" * (capacity - total - len("p")))
        with pytest.raises(BucketFull):
            bb.Set("one-more", b"")


def test_kernel_specific_setup_file_overrides_the_shared_one(
    kos_env: KosEnv, start_kernel: StartKernel
) -> None:
    kos_env.write_setup("[bitbucket]\nrun-at-boot: 1\nargs: --capacity 100\n")
    kos_env.write_setup("[bitbucket]\nargs: --capacity 7\n", layer=f"plugins.{kos_env.kernel}")
    kos_env.write_setup("[bitbucket]\nargs: --capacity 5\n", layer="plugins.otherkernel")
    kernel = start_kernel()
    kernel.wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        bb = kos.lookup("bitbucket")
        bb.Set("s", b"123456")  # seven bytes with its name: more than 5, less than 100
        with pytest.raises(BucketFull):
            bb.Set("e", b"")


def test_requests_over_the_size_limit_get_one_clear_error(
    kos_env: KosEnv, start_kernel: StartKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOS_MAX_REQUEST", "100000")  # for the kernel and its plugins
    start_kernel().wait_plugin("bitbucket", services=["bitbucket"])
    with kos_core.connect() as kos:
        with pytest.raises(RemoteError) as info:
            kos.kernel.Lookup("a" * 1_000_000)
        assert info.value.kind == "RequestTooLarge"
        bb = kos.lookup("bitbucket")
        with pytest.raises(BucketFull):  # a bucket says BucketFull for a value too big
            bb.Set("x", b"y" * 5_000_000)
        # both connections survive and keep working
        assert "bitbucket" in kos.list()
        bb.Set("small", b"fits")
        assert bb.Get("small") == b"fits"
