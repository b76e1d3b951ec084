"""JetStream key-value buckets: the lattice's durable state and the keyvalue backend.

Keys in JetStream KV are restricted to ``[-/_=.a-zA-Z0-9]``; arbitrary keys
from components are stored base64url-encoded under a ``_b64.`` prefix and
decoded on the way out, so callers never see the encoding.
"""

from __future__ import annotations

import base64
import re

import nats.errors
import nats.js.errors as jserr
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from lattice.errors import KeyValueFailure

_PLAIN_KEY = re.compile(r"^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*\Z")
_ENCODED_PREFIX = "_b64."
_BUCKET_NAME = re.compile(r"^[-_a-zA-Z0-9]+\Z")
MAX_CAS_RETRIES = 64


def encode_key(key: str) -> str:
    if _PLAIN_KEY.match(key) and not key.startswith(_ENCODED_PREFIX):
        return key
    return _ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_key(stored: str) -> str:
    if not stored.startswith(_ENCODED_PREFIX):
        return stored
    body = stored[len(_ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


class Bucket:
    """One JetStream KV bucket with translated errors."""

    def __init__(self, name: str, kv: KeyValue, js: JetStreamContext) -> None:
        self.name = name
        self._kv = kv
        self._js = js

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(encode_key(key))
        except (jserr.KeyNotFoundError, jserr.KeyDeletedError):
            return None
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"get {key!r} from bucket {self.name}: {exc}") from exc
        return entry.value or b""

    async def get_revision(self, key: str) -> tuple[bytes | None, int]:
        """Value and revision (0 when absent), for compare-and-swap."""
        try:
            entry = await self._kv.get(encode_key(key))
        except jserr.KeyDeletedError as exc:
            return None, exc.entry.revision if exc.entry and exc.entry.revision else 0
        except jserr.KeyNotFoundError:
            return None, 0
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"get {key!r} from bucket {self.name}: {exc}") from exc
        return entry.value or b"", entry.revision or 0

    async def put(self, key: str, value: bytes) -> int:
        try:
            revision: int = await self._kv.put(encode_key(key), value)
            return revision
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"put {key!r} into bucket {self.name}: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._kv.delete(encode_key(key))
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"delete {key!r} from bucket {self.name}: {exc}") from exc

    async def remove(self, key: str) -> None:
        """Delete a key with no marker left behind (unlike ``delete``).

        Listing reads every subject of the stream, so markers of deleted keys would
        cost a read each forever; state buckets (links, config, specs) remove instead.
        Watchers see nothing: writers publish an event for every change anyway.
        """
        subject = f"$KV.{self.name}.{encode_key(key)}"
        try:
            await self._js.purge_stream(f"KV_{self.name}", subject=subject)
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"remove {key!r} from bucket {self.name}: {exc}") from exc

    async def _subjects(self) -> list[str]:
        prefix = f"$KV.{self.name}."
        try:
            info = await self._js.stream_info(f"KV_{self.name}", subjects_filter=f"{prefix}>")
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"list keys of bucket {self.name}: {exc}") from exc
        return [decode_key(subject[len(prefix) :]) for subject in info.state.subjects or {}]

    async def items(self) -> dict[str, bytes]:
        """Every live key with its value, one read per key.

        nats-py's ``KeyValue.keys()`` can miss keys written just before it is
        called (its watcher may decide it is done before the first delivery), so
        list the stream's subjects and drop keys whose last entry is a delete.
        """
        found = {}
        for key in await self._subjects():
            value = await self.get(key)
            if value is not None:
                found[key] = value
        return dict(sorted(found.items()))

    async def keys(self) -> list[str]:
        return list(await self.items())

    async def put_if(self, key: str, value: bytes, revision: int) -> int | None:
        """Compare-and-swap: write only if the key is at ``revision`` (0: absent).

        Returns the new revision, or None when somebody else wrote first.
        """
        stored = encode_key(key)
        try:
            if revision == 0:
                new: int = await self._kv.create(stored, value)
            else:
                new = await self._kv.update(stored, value, last=revision)
            return new
        except (jserr.KeyWrongLastSequenceError, jserr.BadRequestError):
            return None
        except (nats.errors.Error, jserr.Error) as exc:
            raise KeyValueFailure(f"write {key!r} in bucket {self.name}: {exc}") from exc

    async def increment(self, key: str, delta: int) -> int:
        """Atomically add ``delta`` to a decimal counter; compare-and-swap with retries."""
        for _ in range(MAX_CAS_RETRIES):
            value, revision = await self.get_revision(key)
            try:
                new = (int(value) if value else 0) + delta
            except ValueError as exc:
                raise KeyValueFailure(f"{key!r} in bucket {self.name} is not a number") from exc
            if await self.put_if(key, str(new).encode(), revision) is not None:
                return new
            # Somebody else won the race: read again.
        raise KeyValueFailure(f"increment {key!r} in bucket {self.name}: too much contention")


async def open_bucket(nc: Client, name: str, *, create: bool = True, history: int = 1) -> Bucket:
    """Open a bucket, creating it (file storage) when missing and ``create`` is set."""
    if not _BUCKET_NAME.match(name):
        raise KeyValueFailure(f"invalid bucket name {name!r}: use letters, digits, - and _")
    js = nc.jetstream()
    try:
        return Bucket(name, await js.key_value(name), js)
    except jserr.BucketNotFoundError:
        if not create:
            raise KeyValueFailure(f"bucket {name} does not exist") from None
    except (nats.errors.Error, jserr.Error) as exc:
        raise KeyValueFailure(f"open bucket {name}: {exc}") from exc
    try:
        kv = await js.create_key_value(
            KeyValueConfig(bucket=name, history=history, storage=StorageType.FILE)
        )
    except (nats.errors.Error, jserr.Error) as exc:
        raise KeyValueFailure(f"create bucket {name}: {exc}") from exc
    return Bucket(name, kv, js)


class BucketCache:
    """Opens each bucket once per connection; ``await cache(name)`` returns it."""

    def __init__(self, nc: Client, *, create: bool = True) -> None:
        self._nc = nc
        self._create = create
        self._buckets: dict[str, Bucket] = {}

    async def __call__(self, name: str) -> Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = await open_bucket(self._nc, name, create=self._create)
            self._buckets[name] = bucket
        return bucket
