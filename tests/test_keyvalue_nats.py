"""The keyvalue provider on JetStream KV, against a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from lattice.connection import NatsOptions, connect
from lattice.kv import BucketCache, open_bucket
from lattice.natsd import NatsServer
from providers.http_server import HttpRequest
from providers.keyvalue import NatsKeyValue


async def test_bucket_operations_and_key_encoding(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    try:
        bucket = await open_bucket(nc, "test-ops")
        assert await bucket.get("missing") is None
        for key in ("plain", "with space/and:colon", "ünïcode", "_b64.tricky"):
            await bucket.put(key, key.encode())
            assert await bucket.get(key) == key.encode()
        assert await bucket.keys() == sorted(
            ["plain", "with space/and:colon", "ünïcode", "_b64.tricky"]
        )
        await bucket.delete("plain")
        assert await bucket.get("plain") is None
    finally:
        await nc.close()


async def test_concurrent_increments_do_not_lose_updates(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    try:
        bucket = await open_bucket(nc, "test-incr")
        results = await asyncio.gather(*(bucket.increment("n", 1) for _ in range(25)))
        assert sorted(results) == list(range(1, 26))
        assert await bucket.get("n") == b"25"
    finally:
        await nc.close()


async def test_counter_component_on_jetstream(
    nats_server: NatsServer, compile_cache: Path, components: dict[str, Path]
) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    runtime = HostRuntime(compile_cache, {"nats": NatsKeyValue(BucketCache(nc))})
    try:
        link = LinkSpec("keyvalue", {"bucket": "counter-test"})
        await runtime.start(ComponentSpec("counter", str(components["counter"]), links=(link,)))
        request = HttpRequest("GET", "/counter", "", [], b"")
        bodies = [(await runtime.handle_http("counter", request)).body for _ in range(3)]
        assert bodies == [b'{"count": 1}', b'{"count": 2}', b'{"count": 3}']
        # The count lives in JetStream, visible to any other client.
        bucket = await open_bucket(nc, "counter-test", create=False)
        assert await bucket.get("counter") == b"3"
    finally:
        await runtime.close()
        await nc.close()
