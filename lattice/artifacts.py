"""Component bytes on the lattice: a JetStream object store named by content.

``lattice apply`` uploads each component a spec names by file or URL into the
object store ``P-L-artifacts`` (``Subjects.artifacts_bucket``), as the object
``sha256:<hex>``, and stores the spec with ``nats-object://sha256:<hex>``
(``deploy.sources``). Any host that can reach NATS can then fetch the exact bytes:
a lattice of several machines needs no shared disk and no web server on the side.

An object's name is its digest, so a put of bytes already stored is skipped, and a
get checks what it read against the name. Objects are never rewritten; removing
them is left to the operator (an app's older versions may still name them).

Errors::

    ArtifactFailure            the object store failed                    (retryable)
    ├── ArtifactMissing        no object by that digest
    └── ArtifactRefused        over the caller's size cap, or not matching its name
"""

from __future__ import annotations

import hashlib
import hmac
import re

import nats.errors
import nats.js.errors as jserr
from nats.aio.client import Client
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from lattice.errors import LatticeError
from lattice.subjects import Subjects

_HEX = re.compile(r"^[0-9a-f]{64}\Z")


class ArtifactFailure(LatticeError):
    retryable = True


class ArtifactMissing(ArtifactFailure):
    retryable = False


class ArtifactRefused(ArtifactFailure):
    retryable = False


def object_name(sha256_hex: str) -> str:
    if not _HEX.match(sha256_hex):
        raise ValueError("not a sha256 hex digest")
    return f"sha256:{sha256_hex}"


class ArtifactStore:
    """Put and get component bytes by digest; the bucket is opened (or made) on first use."""

    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self.nc = nc
        self.bucket = subjects.artifacts_bucket
        self._opened: ObjectStore | None = None  # a cache of the opened store

    async def _store(self) -> ObjectStore:
        if self._opened is not None:
            return self._opened
        js = self.nc.jetstream()
        try:
            try:
                self._opened = await js.object_store(self.bucket)
            except jserr.BucketNotFoundError:
                config = ObjectStoreConfig(bucket=self.bucket, storage=StorageType.FILE)
                self._opened = await js.create_object_store(self.bucket, config=config)
        except (nats.errors.Error, jserr.Error) as exc:
            raise ArtifactFailure(f"cannot open the object store {self.bucket}: {exc}") from exc
        return self._opened

    async def put(self, data: bytes) -> str:
        """Store ``data`` (once); its sha256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        name = object_name(digest)
        store = await self._store()
        try:
            try:
                info = await store.get_info(name)
                if info.size == len(data) and not info.deleted:
                    return digest
            except (jserr.ObjectNotFoundError, jserr.ObjectDeletedError):
                pass
            await store.put(name, data)
        except (nats.errors.Error, jserr.Error) as exc:
            raise ArtifactFailure(f"cannot store {name} in {self.bucket}: {exc}") from exc
        return digest

    async def get(self, sha256_hex: str, max_bytes: int) -> bytes:
        """The bytes named ``sha256_hex``, at most ``max_bytes``, checked against the name."""
        name = object_name(sha256_hex)
        store = await self._store()
        try:
            info = await store.get_info(name)
            if info.size is not None and info.size > max_bytes:
                raise ArtifactRefused(f"{name} is over the {max_bytes}-byte cap")
            data = (await store.get(name)).data or b""
        except (jserr.ObjectNotFoundError, jserr.ObjectDeletedError):
            raise ArtifactMissing(f"no artifact {name} in the object store {self.bucket}") from None
        except (nats.errors.Error, jserr.Error) as exc:
            raise ArtifactFailure(f"cannot read {name} from {self.bucket}: {exc}") from exc
        if len(data) > max_bytes:
            raise ArtifactRefused(f"{name} is over the {max_bytes}-byte cap")
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256_hex):
            raise ArtifactRefused(f"{name} in {self.bucket} does not match its name")
        return data
