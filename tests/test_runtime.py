"""The host runtime on real wasmtime and real components: limits, faults, links."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from host.errors import (
    ComponentTrapped,
    DeadlineExceeded,
    InvalidComponent,
    LinkError,
    UnknownComponent,
)
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.pool import Limits
from providers import contracts
from providers.http_server import HttpRequest
from providers.keyvalue import MemoryKeyValue

GET = HttpRequest("GET", "/", "", [], b"")


@pytest.fixture
async def runtime(compile_cache: Path) -> AsyncIterator[HostRuntime]:
    rt = HostRuntime(compile_cache, {"memory": MemoryKeyValue()}, "memory")
    yield rt
    await rt.close()


async def test_hello_component_answers(runtime: HostRuntime, components: dict[str, Path]) -> None:
    await runtime.start(ComponentSpec("hello", str(components["hello"])))
    response = await runtime.handle_http("hello", GET)
    assert response.status == 200
    assert response.body == b"Hello from wasmlattice!\n"
    assert ("content-type", "text/plain") in response.headers


async def test_trap_discards_the_instance_and_the_host_keeps_serving(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    await runtime.start(ComponentSpec("trap", str(components["trap"])))
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    pool = runtime.get("trap").pool
    assert pool.idle_instances == 1  # warmed at start
    with pytest.raises(ComponentTrapped, match="unreachable"):
        await runtime.call("trap", contracts.HTTP_HANDLER, "handle", GET)
    assert pool.idle_instances == 0  # the trapped instance was not put back
    with pytest.raises(ComponentTrapped):
        await runtime.call("trap", contracts.HTTP_HANDLER, "handle", GET)
    assert (await runtime.handle_http("hello", GET)).status == 200


async def test_loop_hits_the_deadline_while_others_are_served(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    await runtime.start(
        ComponentSpec("loop", str(components["loop"]), limits=Limits(deadline_s=1.5))
    )
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    looping = asyncio.create_task(runtime.call("loop", contracts.HTTP_HANDLER, "handle", GET))
    await asyncio.sleep(0.1)
    # While the loop burns a worker thread, another component answers many times.
    answered = 0
    while not looping.done():
        assert (await runtime.handle_http("hello", GET)).status == 200
        answered += 1
        await asyncio.sleep(0.01)
    with pytest.raises(DeadlineExceeded, match="deadline"):
        await looping
    assert answered > 10


async def test_memory_cap_stops_a_hog(runtime: HostRuntime, components: dict[str, Path]) -> None:
    await runtime.start(
        ComponentSpec("hog", str(components["memhog"]), limits=Limits(memory_bytes=32 * 2**20))
    )
    with pytest.raises(ComponentTrapped):
        await runtime.call("hog", contracts.HTTP_HANDLER, "handle", GET)
    # A fresh instance replaces the discarded one.
    with pytest.raises(ComponentTrapped):
        await runtime.call("hog", contracts.HTTP_HANDLER, "handle", GET)


async def test_unlinked_component_cannot_reach_keyvalue(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    with pytest.raises(LinkError) as info:
        await runtime.start(ComponentSpec("counter", str(components["counter"])))
    assert contracts.KEYVALUE_STORE in str(info.value)
    assert contracts.KEYVALUE_ATOMICS in str(info.value)
    assert "counter" not in runtime.components


async def test_linked_counter_counts(runtime: HostRuntime, components: dict[str, Path]) -> None:
    link = LinkSpec("keyvalue", {"bucket": "counts"})
    await runtime.start(ComponentSpec("counter", str(components["counter"]), links=(link,)))
    bodies = [(await runtime.handle_http("counter", GET)).body for _ in range(3)]
    assert bodies == [b'{"count": 1}', b'{"count": 2}', b'{"count": 3}']


async def test_link_config_decides_the_bucket(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    # Two components opening "default" reach different buckets through their links.
    for name, bucket in (("a", "bucket-a"), ("b", "bucket-b")):
        link = LinkSpec("keyvalue", {"bucket.default": bucket})
        await runtime.start(ComponentSpec(name, str(components["counter"]), links=(link,)))
    await runtime.handle_http("a", GET)
    await runtime.handle_http("a", GET)
    assert (await runtime.handle_http("b", GET)).body == b'{"count": 1}'


async def test_unmapped_bucket_is_no_such_store(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    link = LinkSpec("keyvalue", {"bucket.other": "x"})
    await runtime.start(ComponentSpec("counter", str(components["counter"]), links=(link,)))
    response = await runtime.handle_http("counter", GET)
    assert response.status == 500
    assert b"no-such-store" in response.body


async def test_config_reaches_the_component(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    backend = MemoryKeyValue()
    runtime.keyvalue_backends["memory"] = backend
    link = LinkSpec("keyvalue", {"bucket": "cfg"})
    spec = ComponentSpec(
        "counter", str(components["counter"]), config={"counter_key": "visits"}, links=(link,)
    )
    await runtime.start(spec)
    await runtime.handle_http("counter", GET)
    assert await backend.get("cfg", "visits") == b"1"


async def test_bad_update_leaves_the_old_version_serving(
    runtime: HostRuntime, components: dict[str, Path], tmp_path: Path
) -> None:
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    garbage = tmp_path / "bad.wasm"
    garbage.write_bytes(b"\0asm garbage")
    with pytest.raises(InvalidComponent):
        await runtime.start(ComponentSpec("hello", str(garbage)))
    assert (await runtime.handle_http("hello", GET)).status == 200


async def test_scale_changes_concurrency(runtime: HostRuntime, components: dict[str, Path]) -> None:
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    await runtime.scale("hello", Limits(max_concurrency=2))
    results = await asyncio.gather(*(runtime.handle_http("hello", GET) for _ in range(20)))
    assert {r.status for r in results} == {200}
    assert runtime.get("hello").pool.idle_instances <= 2


async def test_unknown_component(runtime: HostRuntime) -> None:
    with pytest.raises(UnknownComponent, match="nope"):
        await runtime.call("nope", contracts.HTTP_HANDLER, "handle", GET)
