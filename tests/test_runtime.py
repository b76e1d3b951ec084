"""The host runtime on real wasmtime and real components: limits, faults, links."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from host.errors import (
    ComponentTrapped,
    DeadlineExceeded,
    InvalidComponent,
    LimitRefused,
    LinkError,
    ResourceLimitExceeded,
    SourceRefused,
    UnknownComponent,
)
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.loader import LoadPolicy
from host.runtime.pool import HostLimits, Limits
from providers import contracts
from providers.http_server import HttpRequest
from providers.keyvalue import MemoryKeyValue
from tests.loop_watch import watching_the_loop

GET = HttpRequest("GET", "/", "", [], b"")


@pytest.fixture
async def runtime(compile_cache: Path, artifact_policy: LoadPolicy) -> AsyncIterator[HostRuntime]:
    rt = HostRuntime(
        compile_cache, {"memory": MemoryKeyValue()}, "memory", load_policy=artifact_policy
    )
    yield rt
    await rt.close()


def pool_threads(component_id: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"wasm-{component_id}-")]


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


async def test_a_loop_holds_the_event_loop_for_one_attempt_at_most(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    """Calls are tried on the event loop's thread first (``host.runtime.inline``): a
    loop there is stopped by the attempt's budget (2 epoch ticks, 5-10 ms) and runs
    again on a worker, so the loop is held for one budget, not the 1.5 s deadline."""
    await runtime.start(
        ComponentSpec("loop", str(components["loop"]), limits=Limits(deadline_s=1.5))
    )
    async with watching_the_loop() as watch:
        with pytest.raises(DeadlineExceeded, match="deadline"):
            await runtime.call("loop", contracts.HTTP_HANDLER, "handle", GET)
    assert runtime.get("loop").pool.inline.abandoned == 1  # tried on the loop's thread
    assert watch.longest < 0.5, f"the event loop was held {watch.longest:.3f} s"


async def test_a_penalty_sends_exactly_its_number_of_calls_to_workers(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    gate = runtime.get("hello").pool.inline
    gate.gave_up()  # a penalty of 8 calls
    before = gate.attempts
    for _ in range(8):
        assert (await runtime.handle_http("hello", GET)).status == 200
    assert gate.attempts == before  # each call asked the gate once
    assert (await runtime.handle_http("hello", GET)).status == 200
    assert gate.attempts == before + 1


async def test_calls_under_steady_load_return_to_the_loop_thread(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    """After a penalty sends calls to workers, calls that had to wait for a slot are
    tried on the loop's thread again (else a busy component would stay on workers)."""
    await runtime.start(
        ComponentSpec("hello", str(components["hello-wat"]), limits=Limits(max_concurrency=2))
    )
    gate = runtime.get("hello").pool.inline
    gate.gave_up()  # the next 8 calls go to workers, and hold both slots a while
    before = gate.attempts
    # The 16 calls after them each find the slots taken, wait, then get one.
    answers = await asyncio.gather(*(runtime.handle_http("hello", GET) for _ in range(24)))
    assert all(a.status == 200 for a in answers)
    assert gate.attempts - before >= 8


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


async def test_linked_counter_counts(
    runtime: HostRuntime, components: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    link = LinkSpec("keyvalue", {"bucket": "counts"})
    await runtime.start(ComponentSpec("counter", str(components["counter"]), links=(link,)))
    bodies = [(await runtime.handle_http("counter", GET)).body for _ in range(3)]
    assert bodies == [b'{"count": 1}', b'{"count": 2}', b'{"count": 3}']
    # Its wasi:logging lines reach the host log, once each, at their level.
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "[counter]" in r.getMessage()]
    assert lines == [(logging.INFO, f"[counter] counter: counter = {n}") for n in (1, 2, 3)]


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


# -- bounded resources ---------------------------------------------------------


async def test_concurrency_over_the_cap_is_refused_not_clamped(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    before = threading.active_count()
    spec = ComponentSpec("wide", str(components["hello-wat"]), limits=Limits(max_concurrency=2000))
    with pytest.raises(LimitRefused, match="max_concurrency 2000 is over this host's cap of 64"):
        await runtime.start(spec)
    assert "wide" not in runtime.components
    assert threading.active_count() <= before + runtime.limits.concurrent_loads
    # Scaling a running component over the cap is refused too, and changes nothing.
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    with pytest.raises(LimitRefused, match="cap of 64"):
        await runtime.scale("hello", Limits(max_concurrency=65))
    assert runtime.get("hello").pool.limits == Limits()


async def test_the_host_caps_worker_threads_over_all_components(
    compile_cache: Path, artifact_policy: LoadPolicy, components: dict[str, Path]
) -> None:
    runtime = HostRuntime(
        compile_cache, load_policy=artifact_policy, limits=HostLimits(max_threads=12)
    )
    try:
        source = str(components["hello-wat"])
        await runtime.start(ComponentSpec("a", source, limits=Limits(max_concurrency=8)))
        with pytest.raises(LimitRefused, match="bring this host to 16, over its cap of 12"):
            await runtime.start(ComponentSpec("b", source, limits=Limits(max_concurrency=8)))
        # A refused start leaves no reservation behind; a replacement counts only once.
        await runtime.start(ComponentSpec("b", source, limits=Limits(max_concurrency=4)))
        await runtime.start(
            ComponentSpec("a", source, config={"v": "2"}, limits=Limits(max_concurrency=8))
        )
        await runtime.stop("a")
        await runtime.start(ComponentSpec("c", source, limits=Limits(max_concurrency=8)))
    finally:
        await runtime.close()


async def test_a_failed_warm_leaves_no_threads(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    # 1 KiB of memory: the component's first page does not fit, instantiation fails.
    spec = ComponentSpec(
        "tiny",
        str(components["hello-wat"]),
        replicas=2,
        limits=Limits(max_concurrency=4, memory_bytes=1024),
    )
    for _ in range(3):
        with pytest.raises(ResourceLimitExceeded):
            await runtime.start(spec)
    assert pool_threads("tiny") == []
    assert "tiny" not in runtime.components
    # Its share of the thread budget was given back.
    await runtime.start(ComponentSpec("tiny", str(components["hello-wat"])))


async def test_a_stopped_component_leaves_no_threads(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
    await asyncio.gather(*(runtime.handle_http("hello", GET) for _ in range(16)))
    assert pool_threads("hello")
    await runtime.stop("hello")
    assert pool_threads("hello") == []


async def test_threads_start_on_demand(runtime: HostRuntime, components: dict[str, Path]) -> None:
    spec = ComponentSpec("hello", str(components["hello-wat"]), limits=Limits(max_concurrency=64))
    await runtime.start(spec)
    for _ in range(5):
        assert (await runtime.handle_http("hello", GET)).status == 200
    assert len(pool_threads("hello")) == 1  # calls one at a time need one thread, not 64


async def test_concurrent_starts_of_one_digest_share_one_compile(
    artifact_policy: LoadPolicy, components: dict[str, Path]
) -> None:
    runtime = HostRuntime(None, load_policy=artifact_policy)  # no disk cache to lean on
    try:
        source = str(components["hello-wat"])
        await asyncio.gather(*(runtime.start(ComponentSpec(n, source)) for n in "abc"))
        compiled = {id(runtime.get(n).pool.component) for n in "abc"}
        assert len(compiled) == 1
    finally:
        await runtime.close()


async def test_a_source_outside_the_artifact_dirs_is_refused_at_start(
    runtime: HostRuntime,
) -> None:
    with pytest.raises(SourceRefused, match="outside"):
        await runtime.start(ComponentSpec("shadow", "/etc/shadow", sha256="0" * 64))
    assert "shadow" not in runtime.components
