"""The BitBucket implementation on its own (no kernel): accounting and errors."""

from __future__ import annotations

import contextlib
import getopt
import threading

import pytest

from kos_plugins_bitbucket import BitBucket, BucketFull, NotFound
from kos_plugins_bitbucket.plugin import DEFAULT_CAPACITY, parse_capacity
from kos_plugins_bitbucket.plugin import BitBucket as BitBucketImpl


def test_default_capacity_is_100k() -> None:
    assert BitBucketImpl().capacity == DEFAULT_CAPACITY == 102400


def test_set_get_list_delete() -> None:
    bb = BitBucketImpl(100)
    bb.Set("b", b"2")
    bb.Set("a", b"1")
    assert bb.Get("a") == b"1"
    assert bb.List() == ["a", "b"]
    bb.Delete("a")
    assert bb.List() == ["b"]
    assert bb.cur_size == 1


def test_full_at_exactly_the_boundary() -> None:
    bb = BitBucketImpl(10)
    bb.Set("x", b"0123456789")  # exactly the capacity fits
    with pytest.raises(BucketFull):
        bb.Set("y", b"z")
    assert bb.cur_size == 10
    assert bb.List() == ["x"]


def test_replacing_frees_the_old_size() -> None:
    bb = BitBucketImpl(10)
    bb.Set("x", b"0123456789")
    bb.Set("x", b"abc")
    assert bb.cur_size == 3
    bb.Set("y", b"1234567")
    assert bb.cur_size == 10


def test_failed_replace_keeps_the_old_value() -> None:
    bb = BitBucketImpl(5)
    bb.Set("x", b"abc")
    with pytest.raises(BucketFull):
        bb.Set("x", b"123456")
    assert bb.Get("x") == b"abc"
    assert bb.cur_size == 3


def test_not_found() -> None:
    bb = BitBucketImpl(5)
    with pytest.raises(NotFound):
        bb.Get("nope")
    with pytest.raises(NotFound):
        bb.Delete("nope")


def test_concurrent_sets_never_exceed_capacity() -> None:
    bb = BitBucketImpl(1000)
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(200):
            with contextlib.suppress(BucketFull):
                bb.Set(f"{n}-{i}", b"x" * (i % 17))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bb.cur_size <= 1000
    assert bb.cur_size == sum(len(bb.Get(name)) for name in bb.List())


def test_interface_declares_the_methods_and_exceptions() -> None:
    methods = BitBucket.methods()
    assert sorted(methods) == ["Delete", "Get", "List", "Set"]
    assert methods["Set"].raises == (BucketFull,)
    assert methods["Get"].returns is bytes
    assert BitBucket.wire_name == "BitBucketAPI.BitBucket"


def test_capacity_option() -> None:
    assert parse_capacity(["-n", "k", "--capacity", "2048"]) == 2048
    assert parse_capacity(["-c", "7"]) == 7
    assert parse_capacity([]) == DEFAULT_CAPACITY
    with pytest.raises(getopt.GetoptError):
        parse_capacity(["--capacity", "lots"])
