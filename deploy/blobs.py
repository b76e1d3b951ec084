"""A content-addressed cache: blobs in ``<dir>/sha256/<hex>``, named by their own digest.

A host keeps one in ``<state_dir>/artifacts``: registry manifests and layers, and
components fetched from the lattice's object store. A name is a promise about the
content, so a restart that needs the same digest reads the file instead of the
network, and nothing in the cache can be stale. Every read is checked against its
name (a truncated or altered file is dropped and fetched again); writes go to a
temporary file renamed into place, so a reader never sees half a blob.

The cache is bounded in bytes (``max_bytes``, 2 GiB by default): a put that takes
it over the bound removes the least recently used blobs (a read counts as a use:
it refreshes the file's modification time), and a blob over the whole bound is not
kept. A removed blob only costs a fetch the next time; removing the directory is
always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

_HEX = re.compile(r"^[0-9a-f]{64}\Z")

DEFAULT_CACHE_BYTES = 2 * 2**30


class ContentCache:
    """Blobs by sha256 under ``root``; methods block (call them off the event loop)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

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
        with contextlib.suppress(OSError):
            os.utime(path)  # used: the last to go when the cache is trimmed
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest``; the caller has checked that it matches."""
        path = self.path(digest)
        if len(data) > self.max_bytes:
            return  # would push out everything else and still not fit
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            # A full disk or a read-only state dir only costs a fetch next time.
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._trim(keep=path)

    def _trim(self, keep: Path) -> None:
        """Remove the least recently used blobs until the cache is within its bound."""
        blobs = []
        with contextlib.suppress(OSError), os.scandir(self.root / "sha256") as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # another process's write in progress
                with contextlib.suppress(OSError):
                    stat = entry.stat()
                    blobs.append((stat.st_mtime_ns, stat.st_size, entry.path))
        total = sum(size for _, size, _ in blobs)
        for _, size, blob in sorted(blobs):
            if total <= self.max_bytes:
                break
            if blob == str(keep):
                continue
            with contextlib.suppress(OSError):
                os.unlink(blob)
                total -= size
