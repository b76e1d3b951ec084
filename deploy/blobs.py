"""A content-addressed cache: blobs in ``<dir>/sha256/<hex>``, named by their own digest.

A host keeps one in ``<state_dir>/artifacts``: registry manifests and layers, and
components fetched from the lattice's object store. A name is a promise about the
content, so a restart that needs the same digest reads the file instead of the
network, and nothing in the cache can be stale. Every read is checked against its
name (a truncated or altered file is dropped and fetched again); writes go to a
temporary file renamed into place, so a reader never sees half a blob.

The cache is not bounded: a digest a host ran once stays until someone deletes it
(removing the directory is always safe).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

_HEX = re.compile(r"^[0-9a-f]{64}$")


class ContentCache:
    """Blobs by sha256 under ``root``; methods block (call them off the event loop)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        if not _HEX.match(hexdigest):
            raise ValueError("not a sha256 digest")
        return self.root / "sha256" / hexdigest

    def get(self, digest: str, max_bytes: int | None = None) -> bytes | None:
        """The blob named ``digest`` (``sha256:<hex>`` or ``<hex>``), or None if absent
        or damaged (then it is removed)."""
        path = self.path(digest)
        try:
            with path.open("rb") as blob:
                data = blob.read() if max_bytes is None else blob.read(max_bytes + 1)
        except OSError:
            return None
        if (max_bytes is not None and len(data) > max_bytes) or hashlib.sha256(
            data
        ).hexdigest() != path.name:
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest``; the caller has checked that it matches."""
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            # A full disk or a read-only state dir only costs a fetch next time.
            with contextlib.suppress(OSError):
                tmp.unlink()
