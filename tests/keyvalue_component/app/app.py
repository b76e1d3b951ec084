"""Makes one wasi:keyvalue call per export and hands its outcome back as a value.

A failed call comes back as ``Err(name)`` rather than raising, so the host's test
tells an ``err`` result (returned) apart from a trap (the call fails).
"""

from collections.abc import Callable
from typing import TypeVar

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import atomics
from wit_world.imports import store as kv

T = TypeVar("T")


def _name(error: kv.Error) -> str:
    if isinstance(error, kv.Error_Other):
        return f"other: {error.value}"
    if isinstance(error, kv.Error_AccessDenied):
        return "access-denied"
    return "no-such-store"


def _with_bucket(identifier: str, call: Callable[[kv.Bucket], T]) -> T:
    try:
        with kv.open(identifier) as bucket:
            return call(bucket)
    except Err as e:
        raise Err(_name(e.value)) from None


class Calls(exports.Calls):
    def get(self, identifier: str, key: str) -> bytes | None:
        return _with_bucket(identifier, lambda b: b.get(key))

    def set(self, identifier: str, key: str, value: bytes) -> None:
        _with_bucket(identifier, lambda b: b.set(key, value))

    def delete(self, identifier: str, key: str) -> None:
        _with_bucket(identifier, lambda b: b.delete(key))

    def exists(self, identifier: str, key: str) -> bool:
        return _with_bucket(identifier, lambda b: b.exists(key))

    def list_keys(self, identifier: str, cursor: int | None) -> tuple[list[str], int | None]:
        page = _with_bucket(identifier, lambda b: b.list_keys(cursor))
        return page.keys, page.cursor

    def increment(self, identifier: str, key: str, delta: int) -> int:
        return _with_bucket(identifier, lambda b: atomics.increment(b, key, delta))
