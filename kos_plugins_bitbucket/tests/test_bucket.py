"""The BitBucket implementation on its own (no kernel): accounting and errors."""

from __future__ import annotations

import contextlib
import getopt
import threading

import pytest

from kos_plugins_bitbucket import BitBucket, BucketFull, NotFound
from kos_plugins_bitbucket.plugin import DEFAULT_CAPACITY, entry_size, parse_capacity
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
    assert bb.cur_size == 2  # "b" and b"2"


def test_full_at_exactly_the_boundary() -> None:
    bb = BitBucketImpl(10)
    bb.Set("x", b"012345678")  # exactly the capacity fits: 1 byte of name, 9 of value
    with pytest.raises(BucketFull):
        bb.Set("y", b"")  # a name alone is one byte too many
    assert bb.cur_size == 10
    assert bb.List() == ["x"]


def test_replacing_frees_the_old_size() -> None:
    bb = BitBucketImpl(10)
    bb.Set("x", b"012345678")
    bb.Set("x", b"abc")
    assert bb.cur_size == 4
    bb.Set("y", b"12345")
    assert bb.cur_size == 10


def test_failed_replace_keeps_the_old_value() -> None:
    bb = BitBucketImpl(5)
    bb.Set("x", b"abc")
    with pytest.raises(BucketFull):
        bb.Set("x", b"12345")
    assert bb.Get("x") == b"abc"
    assert bb.cur_size == 4


def test_names_count_toward_the_capacity() -> None:
    bb = BitBucketImpl(DEFAULT_CAPACITY)
    long_name = "n" * 100_000
    bb.Set(long_name, b"")  # 100,000 bytes of name fit in 102,400
    assert bb.cur_size == 100_000
    refused = 0
    for i in range(1, 1500):  # the attack: many long names with empty values
        try:
            bb.Set(f"{i:05d}" + long_name[5:], b"")
        except BucketFull as exc:
            refused += 1
            assert "100000 bytes (0 of value, 100000 of name)" in str(exc)
            assert len(str(exc)) < 300  # the long name is not echoed back whole
    assert refused == 1499
    assert bb.List() == [long_name]
    bb.Set("s" * 2400, b"")  # exactly the rest
    with pytest.raises(BucketFull):
        bb.Set("t", b"")
    assert bb.cur_size == DEFAULT_CAPACITY


def test_a_name_counts_in_utf8_bytes() -> None:
    bb = BitBucketImpl(13)
    bb.Set("\u00e9\u00e9", b"123456789")  # two characters, four bytes of UTF-8
    assert bb.cur_size == 13
    with pytest.raises(BucketFull):
        bb.Set("\u00e9\u00e9", b"1234567890")
    bb.Delete("\u00e9\u00e9")
    bb.Set("\ud800", b"")  # a lone surrogate cannot break the accounting
    assert bb.cur_size == entry_size("\ud800", b"") == 3


def test_deleting_frees_the_name_too() -> None:
    bb = BitBucketImpl(10)
    bb.Set("abcde", b"12345")
    bb.Delete("abcde")
    assert bb.cur_size == 0
    bb.Set("0123456789", b"")
    assert bb.cur_size == 10


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
    assert bb.cur_size == sum(len(name) + len(bb.Get(name)) for name in bb.List())


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
