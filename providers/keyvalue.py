"""The keyvalue provider: ``wasi:keyvalue/store`` and ``atomics`` over a backend.

A component names buckets by identifier (``open("default")``); its link config
maps identifiers to real buckets, so two components opening "default" need not
share data. Link config keys:

- ``bucket``: the backend bucket every identifier maps to, unless ...
- ``bucket.<identifier>``: the backend bucket for that identifier.

An identifier with no mapping is ``no-such-store``: no ambient access. A mapping
to a reserved bucket (the lattice's own state: specs, links, config, lease) is
refused when the link is bound (``check_buckets``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from lattice.errors import LatticeError

T = TypeVar("T")


class KeyValueError(Exception):
    """A keyvalue operation failed; maps to the WIT ``error`` variant."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind  # "no-such-store" | "access-denied" | "other"


class KeyValueBackend(Protocol):
    async def get(self, bucket: str, key: str) -> bytes | None: ...
    async def set(self, bucket: str, key: str, value: bytes) -> None: ...
    async def delete(self, bucket: str, key: str) -> None: ...
    async def exists(self, bucket: str, key: str) -> bool: ...
    async def keys(self, bucket: str) -> list[str]: ...
    async def increment(self, bucket: str, key: str, delta: int) -> int: ...


def resolve_bucket(identifier: str, link_config: Mapping[str, str]) -> str:
    """The backend bucket a component's ``open(identifier)`` refers to."""
    specific = link_config.get(f"bucket.{identifier}")
    if specific:
        return specific
    default = link_config.get("bucket")
    if default:
        return default
    raise KeyValueError("no-such-store", f"no bucket is linked for identifier {identifier!r}")


def check_buckets(link_config: Mapping[str, str], reserved: Callable[[str], bool]) -> None:
    """Refuse a link config mapping an identifier to a ``reserved`` bucket (ValueError)."""
    for key, bucket in sorted(link_config.items()):
        if (key == "bucket" or key.startswith("bucket.")) and reserved(bucket):
            raise ValueError(
                f"keyvalue link config {key}={bucket!r} names a reserved bucket: "
                "it holds the lattice's own state"
            )


class MemoryKeyValue:
    """In-process backend: fast, for tests and single-host development. Not durable."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, bytes]] = {}

    async def get(self, bucket: str, key: str) -> bytes | None:
        return self._data.get(bucket, {}).get(key)

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        self._data.setdefault(bucket, {})[key] = value

    async def delete(self, bucket: str, key: str) -> None:
        self._data.get(bucket, {}).pop(key, None)

    async def exists(self, bucket: str, key: str) -> bool:
        return key in self._data.get(bucket, {})

    async def keys(self, bucket: str) -> list[str]:
        return sorted(self._data.get(bucket, {}))

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        # Runs on the event loop only, so read-modify-write is atomic here.
        values = self._data.setdefault(bucket, {})
        try:
            new = int(values.get(key, b"0")) + delta
        except ValueError as exc:
            raise KeyValueError("other", f"{key!r} is not a number") from exc
        values[key] = str(new).encode()
        return new


class NatsKeyValue:
    """JetStream KV backend (the default): durable, shared by every host."""

    def __init__(self, opener: BucketOpener) -> None:
        self._opener = opener

    async def _bucket(self, name: str) -> BucketLike:
        try:
            return await self._opener(name)
        except LatticeError as exc:
            raise KeyValueError("other", str(exc)) from exc

    async def get(self, bucket: str, key: str) -> bytes | None:
        return await _translated((await self._bucket(bucket)).get(key))

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        await _translated((await self._bucket(bucket)).put(key, value))

    async def delete(self, bucket: str, key: str) -> None:
        await _translated((await self._bucket(bucket)).delete(key))

    async def exists(self, bucket: str, key: str) -> bool:
        return await self.get(bucket, key) is not None

    async def keys(self, bucket: str) -> list[str]:
        return await _translated((await self._bucket(bucket)).keys())

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        return await _translated((await self._bucket(bucket)).increment(key, delta))


class BucketLike(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes) -> int: ...
    async def delete(self, key: str) -> None: ...
    async def keys(self) -> list[str]: ...
    async def increment(self, key: str, delta: int) -> int: ...


class BucketOpener(Protocol):
    async def __call__(self, name: str) -> BucketLike: ...


async def _translated(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except LatticeError as exc:
        raise KeyValueError("other", str(exc)) from exc
