"""wasi:keyvalue as a guest sees it: every call, its values and its errors.

The guest is tests/keyvalue_component, a componentize-py app whose exports each
make one keyvalue call and return its outcome, an ``error`` as ``err`` (a
string), so a test tells an ``err`` result apart from a trap. It is built once
into build/keyvalue-test/, named by the hash of its sources, the keyvalue WIT
and the componentize-py version, so only changes rebuild.

The backends are real in-process ones (``MemoryKeyValue``); ``Failing`` raises
what a real backend raises when its store fails (``KeyValueError``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalog.kinds import KEYVALUE
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.loader import LoadPolicy
from providers.keyvalue import KeyValueError, MemoryKeyValue
from tests.guests import build_guest

REPO = Path(__file__).resolve().parent.parent
KEYVALUE_WIT = REPO / "providers" / "wit" / "deps" / "keyvalue"
WORLD = "kvtest:probe/keyvalue-test@0.1.0"
CALLS = "kvtest:probe/calls@0.1.0"


@pytest.fixture(scope="session")
def keyvalue_guest() -> Path:
    return build_guest("keyvalue", WORLD, [KEYVALUE_WIT])


class Failing(MemoryKeyValue):
    """A backend whose store fails every call with ``kind``, as a real one can."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.calls = 0

    def _fail(self) -> KeyValueError:
        self.calls += 1
        return KeyValueError(self.kind, "the store is down" if self.kind == "other" else "")

    async def get(self, bucket: str, key: str) -> bytes | None:
        raise self._fail()

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        raise self._fail()

    async def delete(self, bucket: str, key: str) -> None:
        raise self._fail()

    async def exists(self, bucket: str, key: str) -> bool:
        raise self._fail()

    async def keys(self, bucket: str) -> list[str]:
        raise self._fail()

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        raise self._fail()


@pytest.fixture
async def runtime(compile_cache: Path, keyvalue_guest: Path) -> AsyncIterator[HostRuntime]:
    """One guest per backend, named after it; "data" is linked to the bucket "b"."""
    backends = {
        "memory": MemoryKeyValue(),
        "down": Failing("other"),
        "denied": Failing("access-denied"),
    }
    rt = HostRuntime(
        compile_cache, backends, "memory", load_policy=LoadPolicy.of([keyvalue_guest.parent])
    )
    for name in backends:
        link = LinkSpec(KEYVALUE, {"bucket.data": "b", "backend": name})
        await rt.start(ComponentSpec(name, str(keyvalue_guest), links=(link,)))
    yield rt
    await rt.close()


async def call(runtime: HostRuntime, guest: str, func: str, *args: Any) -> Any:
    return await runtime.call(guest, CALLS, func, *args)


# The guest's results come back in wasmtime-py's spelling: no ok value here is a
# string, so a string is the err case, the ``error`` variant's name.


async def test_a_failing_backend_get_is_an_err_not_a_trap(runtime: HostRuntime) -> None:
    # result<option<list<u8>>, error>: wasmtime-py's own host functions could not
    # return this err (an option's None matched any value), so the guest trapped.
    assert await call(runtime, "down", "get", "data", "k") == "other: the store is down"
    assert await call(runtime, "denied", "get", "data", "k") == "access-denied"


async def test_every_call_reaches_the_bucket_and_returns_its_value(runtime: HostRuntime) -> None:
    assert await call(runtime, "memory", "get", "data", "k") is None
    assert await call(runtime, "memory", "exists", "data", "k") is False
    assert await call(runtime, "memory", "set", "data", "k", b"\x00value") is None
    assert await call(runtime, "memory", "get", "data", "k") == b"\x00value"
    assert await call(runtime, "memory", "exists", "data", "k") is True
    assert await call(runtime, "memory", "list-keys", "data", None) == (["k"], None)
    assert await call(runtime, "memory", "delete", "data", "k") is None
    assert await call(runtime, "memory", "get", "data", "k") is None
    assert await call(runtime, "memory", "increment", "data", "n", 5) == 5
    assert await call(runtime, "memory", "increment", "data", "n", 2**40) == 5 + 2**40
    # The link maps "data" to the backend bucket "b", and nothing else.
    backend = runtime.keyvalue_backends["memory"]
    assert await backend.get("b", "n") == str(5 + 2**40).encode()


async def test_list_keys_pages_by_a_thousand(runtime: HostRuntime) -> None:
    backend = runtime.keyvalue_backends["memory"]
    for i in range(1001):
        await backend.set("b", f"k{i:04}", b"")
    keys, cursor = await call(runtime, "memory", "list-keys", "data", None)
    assert (len(keys), cursor) == (1000, 1000)
    rest, cursor = await call(runtime, "memory", "list-keys", "data", 1000)
    assert (rest, cursor) == (["k1000"], None)
    assert sorted(keys + rest) == [f"k{i:04}" for i in range(1001)]


async def test_an_unlinked_identifier_is_no_such_store(runtime: HostRuntime) -> None:
    assert await call(runtime, "memory", "get", "other", "k") == "no-such-store"
    assert await call(runtime, "memory", "increment", "other", "k", 1) == "no-such-store"


@pytest.mark.parametrize(
    ("func", "args"),
    [
        ("set", ("k", b"v")),
        ("delete", ("k",)),
        ("exists", ("k",)),
        ("list-keys", (None,)),
        ("increment", ("k", 1)),
    ],
)
async def test_backend_errors_are_the_error_variant(
    runtime: HostRuntime, func: str, args: tuple[Any, ...]
) -> None:
    assert await call(runtime, "down", func, "data", *args) == "other: the store is down"
    assert await call(runtime, "denied", func, "data", *args) == "access-denied"


async def test_each_guest_call_reaches_the_backend_once(runtime: HostRuntime) -> None:
    """The call is tried on the event loop's thread first; the keyvalue call refuses
    there before reaching the backend, and the call runs again on a worker."""
    backend = runtime.keyvalue_backends["down"]
    assert isinstance(backend, Failing)
    gate = runtime.get("down").pool.inline
    for n in range(1, 4):
        await call(runtime, "down", "get", "data", "k")
        assert backend.calls == n
    assert gate.abandoned >= 1  # the first call at least was tried there
