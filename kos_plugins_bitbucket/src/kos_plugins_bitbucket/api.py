"""``BitBucketAPI``: the interface of the bitbucket service (successor of BitBucketAPI.isl)."""

from __future__ import annotations

from kos_core.errors import InterfaceError
from kos_core.interface import Interface, raises

__all__ = ["BitBucket", "BucketFull", "NotFound"]


class BucketFull(InterfaceError):
    """The value does not fit in what is left of the bucket's capacity."""

    wire_name = "BitBucketAPI.BucketFull"


class NotFound(InterfaceError):
    """No value is stored under that name."""

    wire_name = "BitBucketAPI.NotFound"


class BitBucket(Interface, wire_name="BitBucketAPI.BitBucket"):
    """Named raw strings shared across a kernel, in a bucket of fixed capacity."""

    @raises(BucketFull)
    def Set(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing any old value (whose size is freed)."""
        raise NotImplementedError

    @raises(NotFound)
    def Get(self, name: str) -> bytes:
        """The value stored under ``name``."""
        raise NotImplementedError

    @raises(NotFound)
    def Delete(self, name: str) -> None:
        """Remove the value stored under ``name``."""
        raise NotImplementedError

    def List(self) -> list[str]:
        """The names that have values, sorted."""
        raise NotImplementedError
