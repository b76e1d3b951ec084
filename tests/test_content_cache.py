"""The host's content-addressed blob cache (deploy.blobs): named by digest, bounded in bytes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from deploy.blobs import ContentCache


def _blob(n: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([n]) * size
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def test_a_put_over_the_bound_removes_the_least_recently_used(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=3000)
    blobs = [_blob(n) for n in range(4)]
    for digest, data in blobs[:3]:
        cache.put(digest, data)
        time.sleep(0.01)  # distinct modification times
    assert cache.get(blobs[0][0]) == blobs[0][1]  # read: now the most recently used
    cache.put(*blobs[3])
    assert cache.get(blobs[1][0]) is None  # the least recently used went
    for digest, data in (blobs[0], blobs[2], blobs[3]):
        assert cache.get(digest) == data
    held = sum(f.stat().st_size for f in (tmp_path / "sha256").iterdir())
    assert held <= 3000


def test_a_blob_bigger_than_the_whole_cache_is_not_kept(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, max_bytes=3000)
    small = _blob(1)
    cache.put(*small)
    big = _blob(2, size=5000)
    cache.put(*big)
    assert cache.get(big[0]) is None
    assert cache.get(small[0]) == small[1]  # not pushed out for nothing


def test_a_damaged_blob_is_dropped_not_served(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    digest, data = _blob(3)
    cache.put(digest, data)
    path = cache.path(digest)
    path.write_bytes(b"tampered")
    assert cache.get(digest) is None
    assert not os.path.exists(path)
