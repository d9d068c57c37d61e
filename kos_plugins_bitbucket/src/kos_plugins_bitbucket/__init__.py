"""kos-plugins-bitbucket: a fixed-capacity store of named byte strings shared across a kernel.

Clients import the interface and its exceptions from here::

    from kos_plugins_bitbucket import BitBucket, BucketFull, NotFound
"""

from __future__ import annotations

from .api import BitBucket, BucketFull, NotFound

__all__ = ["BitBucket", "BucketFull", "NotFound"]
