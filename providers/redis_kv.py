"""A keyvalue backend in Redis: one Redis hash per bucket.

Bucket ``counts`` is the hash ``<prefix>counts`` (prefix ``wasmlattice:kv:`` by
default, so the lattice's data is easy to tell apart in a shared Redis); a key is
a field of it. ``increment`` is ``HINCRBY``, atomic in Redis itself, so replicas
of a provider (and anything else using the same Redis) never lose an update.
Numbers are stored as decimal text, as ``MemoryKeyValue`` stores them.

Redis keeps the data; this process only holds a connection pool. Every Redis
error becomes ``KeyValueError("other", ...)``, which the component sees as the
WIT ``error::other``; a Redis outage is an error per call, never a crash, and
the pool reconnects by itself once Redis is back.
"""

from __future__ import annotations

import re

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from lattice.redact import redacted as redacted  # its home moved; importers use it here too
from providers.keyvalue import KeyValueError

DEFAULT_PREFIX = "wasmlattice:kv:"
# Short timeouts: a call must fail (as error::other) well before the host's own
# deadline for a provider call, not hang the component.
CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 1.0


def hash_key(bucket: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis hash holding ``bucket``."""
    return f"{prefix}{bucket}"


class RedisKeyValue:
    """KeyValueBackend over ``redis.asyncio``; ``ping()`` tells whether Redis answers."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        try:
            self._redis = redis.asyncio.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=COMMAND_TIMEOUT_S,
                # One retry: the first command after a Redis restart meets a dead
                # pooled connection; the retry takes a fresh one.
                retry=Retry(ConstantBackoff(0.05), 1),
            )
        except ValueError as exc:  # redis-py's complaint about a malformed URL
            raise KeyValueError("other", f"bad Redis URL {redacted(url)}: {exc}") from exc

    def _hash(self, bucket: str) -> str:
        return hash_key(bucket, self.prefix)

    def _failed(self, exc: redis.exceptions.RedisError) -> KeyValueError:
        return KeyValueError("other", f"Redis at {redacted(self.url)}: {failure_reason(exc)}")

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc

    async def close(self) -> None:
        await self._redis.aclose()

    async def get(self, bucket: str, key: str) -> bytes | None:
        try:
            value = await self._redis.hget(self._hash(bucket), key)
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc
        return _as_bytes(value)

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        try:
            await self._redis.hset(self._hash(bucket), key, value)
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc

    async def delete(self, bucket: str, key: str) -> None:
        try:
            await self._redis.hdel(self._hash(bucket), key)
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc

    async def exists(self, bucket: str, key: str) -> bool:
        try:
            return bool(await self._redis.hexists(self._hash(bucket), key))
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc

    async def keys(self, bucket: str) -> list[str]:
        try:
            fields = await self._redis.hkeys(self._hash(bucket))
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc
        # Sorted, as the other backends list them: pages of list-keys stay stable.
        return sorted(_as_text(field) for field in fields)

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        try:
            return int(await self._redis.hincrby(self._hash(bucket), key, delta))
        except redis.exceptions.ResponseError as exc:
            # HINCRBY refuses a field that does not hold an integer.
            raise KeyValueError("other", f"{key!r} is not a number ({exc})") from exc
        except redis.exceptions.RedisError as exc:
            raise self._failed(exc) from exc


def _as_bytes(value: bytes | str | None) -> bytes | None:
    # decode_responses is off, so Redis answers bytes; str only if a caller's pool decodes.
    return value.encode() if isinstance(value, str) else value


def _as_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_CONNECT_ERROR = re.compile(r"^Error \d+ connecting to \S+\. [A-Za-z ]+\.$")
_ERROR_CODE = re.compile(r"^[A-Z]{2,20}\b")


def failure_reason(exc: redis.exceptions.RedisError) -> str:
    """Why Redis failed, in words of our own: never text the server sent back.

    Whoever sets ``redis_url`` chooses the host:port, so an error that quoted the
    answer would let them read what any internal service says on connect.
    """
    text = str(exc)
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return "authentication failed"
    if isinstance(exc, redis.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, redis.exceptions.ResponseError):
        code = _ERROR_CODE.match(text)
        if code and code.group() in ("NOAUTH", "WRONGPASS"):
            return "authentication failed"
        return f"it refused the command ({code.group()})" if code else "it refused the command"
    if isinstance(exc, redis.exceptions.ConnectionError) and _CONNECT_ERROR.match(text):
        return text  # the OS's words: refused, unreachable, unknown host
    if isinstance(exc, redis.exceptions.ConnectionError) and "Protocol" not in text:
        return "the connection failed"
    return "it did not answer as a Redis server does"
