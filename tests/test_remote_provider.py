"""The keyvalue-redis provider out of process: Redis, NATS, host processes, all real.

From the inside out: ``RedisKeyValue`` against a redis-server; ``serve_keyvalue``
and ``RemoteKeyValue`` over a nats-server; the ``providers.run`` process; and a
lattice of two host processes where host A supervises the provider and a
counter on host B counts in Redis through it, across a kill -9 of the provider
and its stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
import redis

from host.daemon import HostConfig, HostDaemon
from host.supervisor import rotate_log
from lattice.client import LatticeClient
from lattice.connection import Connection, NatsOptions, connect
from lattice.errors import RemoteError
from lattice.events import LatticeEvent, ProviderHealthFailed, ProviderRestarted
from lattice.messages import (
    Empty,
    Link,
    Reply,
    ScaleComponent,
    StartProvider,
    decode,
    http_route,
)
from lattice.natsd import NatsServer, free_port
from lattice.process import kill_process, process_alive, spawn
from lattice.provider_messages import KV_OPERATION, health_operation
from lattice.rpc import request
from lattice.subjects import Subjects
from providers.keyvalue import KeyValueError, MemoryKeyValue
from providers.launch import BadProviderConfig, launch_env
from providers.redis_kv import RedisKeyValue, hash_key, redacted
from providers.remote import RemoteKeyValue, serve_keyvalue
from tests.lattice_procs import LATTICE, HostProcess, host_processes, wait_for_hosts
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

PROVIDER = "kv-redis"
SUBJECTS = Subjects()


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Connection]:
    connection = await connect(NatsOptions(nats_server.url))
    yield connection
    await connection.close()


# -- RedisKeyValue ---------------------------------------------------------------------


async def test_redis_backend_keeps_one_hash_per_bucket(redis_server: RedisServer) -> None:
    kv = RedisKeyValue(redis_server.url)
    try:
        await kv.ping()
        assert await kv.get("b1", "missing") is None
        await kv.set("b1", "bin", b"\x00\xff\x80")
        await kv.set("b2", "bin", b"other bucket")
        assert await kv.get("b1", "bin") == b"\x00\xff\x80"
        assert await kv.exists("b1", "bin") and not await kv.exists("b1", "missing")
        assert [await kv.increment("b1", "n", d) for d in (1, 1, 40)] == [1, 2, 42]
        assert await kv.get("b1", "n") == b"42"
        assert await kv.keys("b1") == ["bin", "n"]
        await kv.delete("b1", "bin")
        await kv.delete("b1", "never-there")
        assert await kv.keys("b1") == ["n"]
        with pytest.raises(KeyValueError, match="not a number") as caught:
            await kv.increment("b2", "bin", 1)
        assert caught.value.kind == "other"
    finally:
        await kv.close()
    direct = redis.Redis.from_url(redis_server.url)
    assert direct.hgetall(hash_key("b1")) == {b"n": b"42"}
    assert direct.hgetall(hash_key("b2")) == {b"bin": b"other bucket"}
    direct.close()


async def test_redis_outage_is_an_error_per_call_and_heals(redis_server: RedisServer) -> None:
    kv = RedisKeyValue(redis_server.url)
    try:
        await kv.set("b", "k", b"v")
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(KeyValueError, match="Redis at") as caught:
            await kv.get("b", "k")
        assert caught.value.kind == "other"
        with pytest.raises(KeyValueError):
            await kv.ping()
        assert time.monotonic() - started < 3, "a down Redis must fail fast"
        redis_server.start()  # same port, empty again (no persistence)
        await kv.ping()
        assert await kv.get("b", "k") is None
    finally:
        await kv.close()


def test_redis_url_password_is_redacted() -> None:
    assert redacted("redis://user:s3cret@db:6379/0") == "redis://user:***@db:6379/0"
    assert redacted("redis://:s3cret@db/0") == "redis://:***@db/0"
    assert redacted("redis://db:6379") == "redis://db:6379"


def test_launch_env_checks_kind_and_config() -> None:
    assert launch_env("keyvalue-redis", {"redis_url": "redis://x"}) == {
        "WASMLATTICE_REDIS_URL": "redis://x"
    }
    with pytest.raises(BadProviderConfig, match="unknown provider kind 'nope'"):
        launch_env("nope", {})
    with pytest.raises(BadProviderConfig, match="needs config redis_url"):
        launch_env("keyvalue-redis", {})
    with pytest.raises(BadProviderConfig, match="takes no config colour"):
        launch_env("keyvalue-redis", {"redis_url": "redis://x", "colour": "red"})


# -- serve_keyvalue and RemoteKeyValue --------------------------------------------------


async def test_remote_keyvalue_round_trips_through_nats(
    nc: Connection, redis_server: RedisServer
) -> None:
    backend = RedisKeyValue(redis_server.url)
    service = await serve_keyvalue(nc, SUBJECTS, PROVIDER, backend, instance_id="one")
    remote = RemoteKeyValue(nc, SUBJECTS, PROVIDER)
    try:
        await remote.set("b", "bin", b"\x00\xff")
        assert await remote.get("b", "bin") == b"\x00\xff"
        assert await remote.get("b", "missing") is None
        assert await remote.exists("b", "bin") and not await remote.exists("b", "missing")
        assert await remote.increment("b", "n", 5) == 5
        assert await remote.keys("b") == ["bin", "n"]
        await remote.delete("b", "bin")
        assert await remote.keys("b") == ["n"]
        await remote.set("b", "t", b"text")
        with pytest.raises(KeyValueError, match="not a number") as caught:
            await remote.increment("b", "t", 1)
        assert caught.value.kind == "other"
        latencies = []
        for _ in range(200):
            started = time.perf_counter()
            await remote.increment("b", "n", 1)
            latencies.append(time.perf_counter() - started)
        assert await remote.get("b", "n") == b"205"
        print(f"\nremote kv increment: median {statistics.median(latencies) * 1e3:.2f} ms")
        for operation in (health_operation(), health_operation("one")):
            subject = SUBJECTS.provider(PROVIDER, operation)
            reply = await request(nc, subject, Empty(), timeout_s=2, who="provider")
            assert reply.ok and reply.data["instance_id"] == "one"
    finally:
        await service.close()
        await backend.close()


async def test_health_follows_redis_and_calls_fail_cleanly(
    nc: Connection, redis_server: RedisServer
) -> None:
    backend = RedisKeyValue(redis_server.url)
    service = await serve_keyvalue(nc, SUBJECTS, PROVIDER, backend)
    remote = RemoteKeyValue(nc, SUBJECTS, PROVIDER)
    health = SUBJECTS.provider(PROVIDER, health_operation())
    try:
        redis_server.stop()
        reply = await request(nc, health, Empty(), timeout_s=3, who="provider")
        assert not reply.ok and reply.code == "unavailable" and "Redis at" in (reply.error or "")
        with pytest.raises(KeyValueError, match="Redis at"):
            await remote.increment("b", "n", 1)
        redis_server.start()
        assert (await request(nc, health, Empty(), timeout_s=3, who="provider")).ok
        assert await remote.increment("b", "n", 1) == 1
    finally:
        await service.close()
        await backend.close()


async def test_no_provider_is_a_fast_keyvalue_error(nc: Connection) -> None:
    remote = RemoteKeyValue(nc, SUBJECTS, "nobody")
    started = time.monotonic()
    with pytest.raises(KeyValueError, match="provider nobody did not answer") as caught:
        await remote.get("b", "k")
    assert caught.value.kind == "other"
    assert time.monotonic() - started < 1


async def test_replicas_share_the_queue_group_and_bad_requests_get_errors(
    nc: Connection,
) -> None:
    calls = {"a": 0, "b": 0}

    class Counting(MemoryKeyValue):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def increment(self, bucket: str, key: str, delta: int) -> int:
            calls[self.name] += 1
            return await super().increment(bucket, key, delta)

    services = [
        await serve_keyvalue(nc, SUBJECTS, PROVIDER, Counting(name), instance_id=name)
        for name in calls
    ]
    try:
        remote = RemoteKeyValue(nc, SUBJECTS, PROVIDER)
        for _ in range(60):
            await remote.increment("b", "n", 1)
        assert calls["a"] > 0 and calls["b"] > 0 and sum(calls.values()) == 60
        msg = await nc.request(
            SUBJECTS.provider(PROVIDER, KV_OPERATION), msgpack.packb({"op": "set"}), timeout=2
        )
        reply = decode(Reply, msg.data)
        assert not reply.ok and reply.code == "bad_request" and "bucket" in (reply.error or "")
    finally:
        for service in services:
            await service.close()


# -- the provider process ----------------------------------------------------------------


def provider_command(nats_url: str, redis_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "providers.run",
        "keyvalue-redis",
        "--provider-id",
        PROVIDER,
        "--nats-url",
        nats_url,
        "--redis-url",
        redis_url,
        *extra,
    ]


def test_provider_process_refuses_to_start_without_redis_or_nats(
    nats_server: NatsServer, redis_server: RedisServer
) -> None:
    no_redis = f"redis://:pw@127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        provider_command(nats_server.url, no_redis), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "cannot reach Redis at redis://:***@127.0.0.1" in result.stderr
    assert "pw" not in result.stderr
    no_nats = f"nats://127.0.0.1:{free_port()}"
    result = subprocess.run(
        provider_command(no_nats, redis_server.url), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "no NATS server at" in result.stderr


async def test_provider_process_serves_and_exits_cleanly_on_sigterm(
    nats_server: NatsServer, redis_server: RedisServer, nc: Connection, tmp_path: Path
) -> None:
    process = spawn(
        provider_command(nats_server.url, redis_server.url, "--instance-id", "solo"),
        log=tmp_path / "provider.log",
    )
    try:
        remote = RemoteKeyValue(nc, SUBJECTS, PROVIDER)

        async def serving() -> bool:
            try:
                return await remote.increment("b", "n", 1) > 0
            except KeyValueError:
                return False

        await wait_until(serving, "the provider process to serve")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0
        assert "stopping: signal received" in (tmp_path / "provider.log").read_text()
    finally:
        kill_process(process)


# -- supervised by a host ------------------------------------------------------------------


@pytest.fixture
async def daemon(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[HostDaemon]:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        host_id="host-a",
        http_port=0,
        heartbeat_s=0.2,
    )
    host = await HostDaemon.start(config)
    try:
        yield host
    finally:
        await host.shutdown()


async def test_bad_start_provider_requests_get_error_replies(
    daemon: HostDaemon, nc: Connection, redis_server: RedisServer
) -> None:
    client = LatticeClient(nc)
    subject = SUBJECTS.host_control("host-a", "provider.start")
    unknown_kind = msgpack.packb({"provider_id": "p", "kind": "keyvalue-etcd"})
    reply = decode(Reply, (await nc.request(subject, unknown_kind, timeout=5)).data)
    assert not reply.ok and reply.code == "bad_request" and "kind" in (reply.error or "")
    with pytest.raises(RemoteError, match="needs config redis_url") as caught:
        await client.start_provider("host-a", StartProvider(provider_id="p", kind="keyvalue-redis"))
    assert caught.value.code == "bad_request"
    unreachable = StartProvider(
        provider_id="p",
        kind="keyvalue-redis",
        config={"redis_url": f"redis://127.0.0.1:{free_port()}/0"},
    )
    with pytest.raises(RemoteError, match=r"exited with code 1: .*cannot reach Redis") as caught:
        await client.start_provider("host-a", unreachable)
    assert caught.value.code == "failed"
    with pytest.raises(RemoteError, match="no provider 'p' runs on host host-a") as caught:
        await client.stop_provider("host-a", "p")
    assert caught.value.code == "not_found"
    assert (await client.inventory("host-a")).providers == []


async def test_host_shutdown_stops_its_providers(
    daemon: HostDaemon, nc: Connection, redis_server: RedisServer
) -> None:
    client = LatticeClient(nc)
    request = redis_server.provider(PROVIDER)
    started = await client.start_provider("host-a", request)
    assert started.pid is not None and started.healthy and process_alive(started.pid)
    # The same request again is a no-op; a replacement that cannot start leaves the
    # running one serving.
    assert (await client.start_provider("host-a", request)).pid == started.pid
    with pytest.raises(RemoteError, match="cannot reach Redis at redis://other"):
        await client.start_provider(
            "host-a", request.model_copy(update={"config": {"redis_url": "redis://other"}})
        )
    (listed,) = (await client.inventory("host-a")).providers
    assert (listed.provider_id, listed.pid, listed.restarts) == (PROVIDER, started.pid, 0)
    await daemon.shutdown()
    assert not process_alive(started.pid)


async def test_a_redis_outage_fails_health_and_the_provider_comes_back(
    daemon: HostDaemon, nc: Connection, redis_server: RedisServer
) -> None:
    client = LatticeClient(nc)
    request = redis_server.provider(PROVIDER)
    first = await client.start_provider("host-a", request)
    seen: list[LatticeEvent] = []

    async def tail() -> None:
        async for event in client.events():
            seen.append(event)

    tailer = asyncio.create_task(tail(), name="tail-events")
    try:
        redis_server.stop()

        async def health_failed() -> bool:
            return any(isinstance(e, ProviderHealthFailed) for e in seen)

        await wait_until(health_failed, "provider_health_failed")
        failed = next(e for e in seen if isinstance(e, ProviderHealthFailed))
        assert failed.data.pid == first.pid and "Redis at" in failed.data.error
        redis_server.start()

        async def healthy_again() -> bool:
            (now,) = (await client.inventory("host-a")).providers
            return now.healthy and now.restarts >= 1 and now.pid != first.pid

        await wait_until(healthy_again, "the provider to be healthy again", timeout_s=30)
        remote = RemoteKeyValue(nc, SUBJECTS, PROVIDER)
        assert await remote.increment("b", "n", 1) == 1
    finally:
        tailer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tailer


# -- two host processes ----------------------------------------------------------------------


@pytest.fixture
def hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> Iterator[dict[str, HostProcess]]:
    with host_processes(
        nats_server.url,
        tmp_path,
        {"host-a": {}, "host-b": {}},
        heartbeat_s=0.5,
        compile_cache=compile_cache,
    ) as procs:
        yield procs


async def get_counter(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/counter") as response:
        return response.status, await response.text()


async def link_counter_to_provider(client: LatticeClient, counter: Path) -> None:
    await client.put_link(
        Link(
            source_id="counter",
            target="keyvalue",
            interfaces=["store", "atomics"],
            config={"provider": PROVIDER, "bucket": "counts"},
        )
    )
    await client.put_link(http_route("counter", "/counter"))
    await client.scale("host-b", ScaleComponent(component_id="counter", source=str(counter)))


async def test_counter_on_host_b_counts_in_redis_through_a_provider_on_host_a(
    hosts: dict[str, HostProcess],
    nc: Connection,
    redis_server: RedisServer,
    components: dict[str, Path],
) -> None:
    client = LatticeClient(nc)
    await wait_for_hosts(client, set(hosts))
    events: list[LatticeEvent] = []

    async def tail() -> None:
        async for event in client.events():
            events.append(event)

    tailer = asyncio.create_task(tail(), name="tail-events")
    try:
        await _count_restart_and_stop(client, hosts, redis_server, components["counter"], events)
    finally:
        tailer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tailer


async def _count_restart_and_stop(
    client: LatticeClient,
    hosts: dict[str, HostProcess],
    redis_server: RedisServer,
    counter: Path,
    events: list[LatticeEvent],
) -> None:
    request = redis_server.provider(PROVIDER)
    first = await client.start_provider("host-a", request)
    assert first.pid is not None and first.healthy and first.restarts == 0
    await link_counter_to_provider(client, counter)
    url = hosts["host-b"].http_url
    latencies = []
    for expected in range(1, 21):
        started = time.perf_counter()
        assert await get_counter(url) == (200, f'{{"count": {expected}}}')
        latencies.append(time.perf_counter() - started)
    median_ms = statistics.median(latencies[1:]) * 1e3  # the first call warms up
    print(f"\nHTTP -> host B -> provider on host A -> Redis: median {median_ms:.1f} ms")
    direct = redis.Redis.from_url(redis_server.url)
    assert direct.hget(hash_key("counts"), "counter") == b"20"
    assert (await client.inventory("host-b")).providers == []

    os.kill(first.pid, signal.SIGKILL)

    async def restarted() -> bool:
        (now,) = (await client.inventory("host-a")).providers
        return now.pid not in (None, first.pid) and now.healthy and now.restarts == 1

    await wait_until(restarted, "the supervisor to restart the provider")
    (second,) = (await client.inventory("host-a")).providers
    assert second.pid is not None and process_alive(second.pid) and not process_alive(first.pid)
    assert any(isinstance(e, ProviderRestarted) and e.data.pid == second.pid for e in events)

    async def counting_again() -> bool:
        return (await get_counter(url))[0] == 200

    await wait_until(counting_again, "the counter to reach the restarted provider")
    assert direct.hget(hash_key("counts"), "counter") == b"21"  # resumed, links intact
    assert await get_counter(url) == (200, '{"count": 22}')

    stopped = await client.stop_provider("host-a", PROVIDER)
    assert stopped.pid == second.pid and not process_alive(second.pid)
    assert (await client.inventory("host-a")).providers == []
    status, body = await get_counter(url)
    assert status == 500 and f"provider {PROVIDER} did not answer" in body
    assert [c.component_id for c in (await client.inventory("host-b")).components] == ["counter"]
    assert {"provider_started", "provider_restarted", "provider_stopped"} <= {
        e.type for e in events
    }
    direct.close()


def lattice_cli(nats_url: str, *args: str) -> Any:
    """Run the ``lattice`` CLI with JSON output; its parsed output."""
    command = [LATTICE, *args, "--nats-url", nats_url, "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_a_killed_host_leaves_no_provider_behind(
    hosts: dict[str, HostProcess],
    nc: Connection,
    nats_server: NatsServer,
    redis_server: RedisServer,
) -> None:
    await wait_for_hosts(LatticeClient(nc), {"host-a"})
    start = ["start", "provider", PROVIDER, "keyvalue-redis", "--host", "host-a"]
    start += ["--config", f"redis_url={redis_server.url}"]
    started = await asyncio.to_thread(lattice_cli, nats_server.url, *start)
    assert started["host_id"] == "host-a" and started["healthy"]
    listed = await asyncio.to_thread(lattice_cli, nats_server.url, "get", "providers")
    assert [(p["host_id"], p["pid"]) for p in listed] == [("host-a", started["pid"])]
    hosts["host-a"].kill()

    async def gone() -> bool:
        return not process_alive(started["pid"])

    await wait_until(gone, "the orphaned provider to exit", timeout_s=5)


def test_a_large_provider_log_is_set_aside_at_the_next_start(tmp_path: Path) -> None:
    log_path = tmp_path / "kv.log"
    rotate_log(log_path, max_bytes=10)  # no log yet: nothing to do
    log_path.write_bytes(b"x" * 11)
    rotate_log(log_path, max_bytes=10)
    assert not log_path.exists() and (tmp_path / "kv.log.1").read_bytes() == b"x" * 11
    log_path.write_bytes(b"small")
    rotate_log(log_path, max_bytes=10)
    assert log_path.read_bytes() == b"small"


async def test_a_new_config_replaces_the_provider_without_a_gap(
    hosts: dict[str, HostProcess],
    nc: Connection,
    redis_server: RedisServer,
    components: dict[str, Path],
) -> None:
    client = LatticeClient(nc)
    await wait_for_hosts(client, set(hosts))
    config = {"redis_url": redis_server.url, "key_prefix": "one"}
    request = StartProvider(provider_id=PROVIDER, kind="keyvalue-redis", config=config)
    first = await client.start_provider("host-a", request)
    await link_counter_to_provider(client, components["counter"])
    url = hosts["host-b"].http_url
    assert await get_counter(url) == (200, '{"count": 1}')
    answers: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            answers.append(await get_counter(url))
            await asyncio.sleep(0.005)

    load = asyncio.create_task(hammer(), name="hammer")
    try:
        changed = request.model_copy(update={"config": {**config, "key_prefix": "two"}})
        second = await client.start_provider("host-a", changed)
        # Calls go on while the old process still serves, then it stops.
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await load
    assert second.pid not in (None, first.pid) and second.healthy
    assert first.pid is not None and not process_alive(first.pid)
    assert [p.pid for p in (await client.inventory("host-a")).providers] == [second.pid]
    assert len(answers) > 10
    assert [answer for answer in answers if answer[0] != 200] == []
    # Calls now reach the new process: it counts under the new key prefix.
    direct = redis.Redis.from_url(redis_server.url)
    before = int(direct.hget(hash_key("counts", "two"), "counter") or 0)
    assert (await get_counter(url))[0] == 200
    assert int(direct.hget(hash_key("counts", "two"), "counter") or 0) == before + 1
    direct.close()
