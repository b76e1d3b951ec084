"""Standard wasi:http/proxy components, served unchanged over real HTTP.

The components come from two toolchains (componentize-py and componentize-js from
npm); outgoing requests go to a real local aiohttp server, through the host's
http-client policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from catalog.contracts import compatible
from catalog.kinds import HTTP_CLIENT, KEYVALUE
from host.errors import LinkError
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.loader import LoadPolicy
from host.runtime.pool import Limits
from providers.http_client import Destination, HttpClientPolicy
from providers.http_server import HttpServer, Route
from providers.keyvalue import MemoryKeyValue

FOUR_MIB = 4 * 2**20


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """A real HTTP server for outgoing requests: /hello, and /redirect (a 302)."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello from upstream")

    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/hello"})

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def served(
    compile_cache: Path,
    components: dict[str, Path],
    artifact_policy: LoadPolicy,
    upstream: str,
) -> AsyncIterator[tuple[HostRuntime, aiohttp.ClientSession]]:
    runtime = HostRuntime(
        compile_cache, {"memory": MemoryKeyValue()}, "memory", load_policy=artifact_policy
    )
    server = HttpServer(
        runtime.handle_http, port=0, max_body_bytes=8 * 2**20, exchanges=runtime.http_exchange
    )
    await server.start()
    allow = LinkSpec(HTTP_CLIENT, {"allow": "http://127.0.0.1:*", "max_response_bytes": "1024"})
    specs = [
        ComponentSpec("hello", str(components["wasi-hello"])),
        ComponentSpec("js", str(components["wasi-hello-js"])),
        ComponentSpec(
            "probe",
            str(components["wasi-probe"]),
            limits=Limits(deadline_s=2.0),
            links=(allow,),
            config={"env.GREETING": "hi"},
        ),
        ComponentSpec("unlinked", str(components["wasi-probe"])),
        ComponentSpec(
            "counter",
            str(components["wasi-counter"]),
            links=(LinkSpec(KEYVALUE, {"bucket": "counts"}), allow),
            config={"fetch_url": f"{upstream}/hello"},
        ),
        ComponentSpec("own", str(components["hello-wat"])),  # the project's own contract
        # Reuse forced on a componentize-js component, whose instances serve one request.
        ComponentSpec(
            "js-reused", str(components["wasi-hello-js"]), config={"http_instance_reuse": "true"}
        ),
    ]
    for spec in specs:
        await runtime.start(spec)
        server.routes.add(Route(spec.component_id, f"/{spec.component_id}"))
    async with aiohttp.ClientSession(server.url) as session:
        yield runtime, session
    await server.stop()
    await runtime.close()


def component_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wasmlattice.component"]


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
    async with http.get(path) as response:
        return response.status, await response.read()


async def test_componentize_py_hello_is_served_and_logs_its_stdout(
    served: tuple[HostRuntime, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    _, http = served
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    for i in range(3):
        async with http.get(f"/hello/there?x={i}") as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/plain"
            assert await response.read() == b"Hello from wasi:http!\n"
    messages = component_lines(caplog)
    # Every request's stdout: the handle componentize-py keeps outlives the request.
    for i in range(3):
        assert f"[hello] stdout: wasi-hello: /hello/there?x={i}" in messages


async def test_componentize_py_instances_are_reused(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    runtime, http = served
    pool = runtime.get("hello").pool
    for _ in range(5):  # one at a time: one instance serves them all
        assert await get(http, "/hello") == (200, b"Hello from wasi:http!\n")
    for _ in range(100):  # the response can reach the client before the call returns
        if pool.idle_instances:
            break
        await asyncio.sleep(0.01)
    assert pool.reuse and pool.idle_instances == 1 and pool.invocations == 5
    # What the instance keeps (its stdout) is all the host holds for it.
    assert len(runtime.get("hello").wasi.table) <= 2  # type: ignore[union-attr]


async def test_componentize_js_gets_a_fresh_instance_per_request(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    runtime, http = served
    assert not runtime.get("js").pool.reuse  # its producers section names ComponentizeJS
    for _ in range(3):
        assert await get(http, "/js/a") == (200, b"Hello from JavaScript at /js/a!\n")
    # What discarded instances held (their stdio streams) is released with them (once
    # their calls have returned: the response can reach the client before that).
    table = runtime.get("js").wasi
    assert table is not None
    for _ in range(100):
        if len(table.table) <= 2:
            break
        await asyncio.sleep(0.01)
    assert len(table.table) <= 2


async def test_a_component_that_fails_on_reuse_falls_back_to_fresh_instances(
    served: tuple[HostRuntime, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, http = served
    pool = runtime.get("js-reused").pool
    assert pool.reuse  # configured so, against what its producers say
    for _ in range(4):  # the second runs on a used instance, fails, and is retried
        assert await get(http, "/js-reused/b") == (
            200,
            b"Hello from JavaScript at /js-reused/b!\n",
        )
    assert not pool.reuse
    assert any("answered on a fresh one" in r.getMessage() for r in caplog.records)


async def test_componentize_js_hello_is_served(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    for _ in range(3):
        assert await get(http, "/js/page") == (200, b"Hello from JavaScript at /js/page!\n")


async def test_request_parts_reach_the_component(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    async with http.get("/probe/headers?a=b", headers={"X-Probe": "yes"}) as response:
        text = await response.text()
    assert "method Method_Get" in text and "scheme Scheme_Http" in text
    assert "path /probe/headers?a=b" in text
    assert "authority 127.0.0.1:" in text
    assert "x-probe: yes" in text


async def test_a_short_call_runs_on_the_event_loop_thread_and_logs_once(
    served: tuple[HostRuntime, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, http = served
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    gate = runtime.get("probe").pool.inline
    for _ in range(12):
        assert await get(http, "/probe/stdout") == (200, b"printed\n")
    # Tried on the loop's thread, and (on a busy machine an attempt may run out of
    # its budget and be given up, the call running again on a worker) one stood.
    assert gate.attempts - gate.abandoned - gate.slow >= 1
    # Held while the attempt could still be given up, then written once per request.
    assert component_lines(caplog).count("[probe] stdout: wasi-probe stdout marker") == 12


async def test_an_attempt_that_would_wait_runs_again_on_a_worker(
    served: tuple[HostRuntime, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Reading a request body waits: the attempt on the loop's thread stops there, and
    the call runs again from the start on a worker; what the first one printed is dropped."""
    runtime, http = served
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    pool = runtime.get("probe").pool
    invocations, abandoned = pool.invocations, pool.inline.abandoned
    data = os.urandom(3000)
    async with http.post("/probe/log-and-echo", data=data) as response:
        assert response.status == 200
        assert await response.read() == data
    assert pool.inline.abandoned == abandoned + 1
    assert pool.invocations == invocations + 1  # counted once: the run that stood
    assert component_lines(caplog).count("[probe] stdout: wasi-probe echo marker") == 1
    # The gate sends the next calls straight to workers: they are not tried first.
    attempts = pool.inline.attempts
    assert await get(http, "/probe/stdout") == (200, b"printed\n")
    assert pool.inline.attempts == attempts


async def test_keyvalue_calls_are_made_once_per_request(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    """A keyvalue increment stops an attempt before it is made: counts never double."""
    runtime, http = served
    counts = []
    for _ in range(12):  # past the gate's first penalty: attempted again, given up again
        async with http.get("/counter") as response:
            assert response.status == 200
            counts.append((await response.json())["count"])
    assert counts == list(range(counts[0], counts[0] + 12))
    assert runtime.get("counter").pool.inline.abandoned >= 2


async def test_a_response_complete_when_the_call_returns_is_sent_whole(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    """A short response goes out at once with its length; a longer one streams."""
    _, http = served
    async with http.get("/hello") as response:
        assert response.headers.get("Content-Length") == str(len(b"Hello from wasi:http!\n"))
        assert "Transfer-Encoding" not in response.headers
        assert await response.read() == b"Hello from wasi:http!\n"
    n = 64 * 1024  # over what an exchange holds back while the guest runs
    async with http.get(f"/probe/bytes?n={n}") as response:
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert await response.read() == b"x" * n


async def test_four_mib_stream_in_and_out(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    payload = os.urandom(FOUR_MIB)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    async with http.post("/probe/echo", data=chunks()) as response:
        assert response.status == 200
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert await response.read() == payload
    status, body = await get(http, f"/probe/bytes?n={FOUR_MIB}")
    assert status == 200 and body == b"x" * FOUR_MIB


async def test_the_body_cap_holds_for_streamed_bodies(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    over = b"x" * (8 * 2**20 + 1)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        for i in range(0, len(over), 2**20):
            yield over[i : i + 2**20]

    async with http.post("/probe/length", data=b"y" * 1000) as response:
        assert (response.status, await response.read()) == (200, b"1000\n")
    async with http.post("/probe/length", data=over) as response:
        assert response.status == 413
    async with http.post("/probe/length", data=chunked()) as response:
        assert response.status == 413
        assert await response.text() == f"request body over {8 * 2**20} bytes\n"


async def test_failures_are_500_and_504(served: tuple[HostRuntime, aiohttp.ClientSession]) -> None:
    _, http = served
    assert await get(http, "/probe/no-response") == (500, b"the component failed\n")
    assert await get(http, "/probe/panic") == (500, b"the component failed\n")
    looping = asyncio.create_task(get(http, "/probe/loop"))
    await asyncio.sleep(0.1)
    while not looping.done():  # the loop does not hold up the others
        assert (await get(http, "/hello"))[0] == 200
    assert (await looping)[0] == 504
    assert (await get(http, "/probe/bytes?n=3")) == (200, b"xxx")


async def test_a_failed_instance_is_freed_at_once_not_by_the_cycle_collector(
    served: tuple[HostRuntime, aiohttp.ClientSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trap's exception chain holds the instance until the cycle collector runs; its
    store (the guest's whole memory, ~7.5 MiB here) must not wait for that."""
    runtime, http = served
    pool = runtime.get("probe").pool
    made: list[Any] = []
    instantiate = pool._instantiate

    def recording() -> Any:
        made.append(instantiate())
        return made[-1]

    monkeypatch.setattr(pool, "_instantiate", recording)
    gc.disable()  # as if the collector had not come round yet
    try:
        for _ in range(6):
            assert await get(http, "/probe/panic") == (500, b"the component failed\n")
        open_stores = []
        for instance in made:
            with contextlib.suppress(ValueError):  # a closed store's pointer is gone
                instance.store.ptr()
                open_stores.append(instance)
    finally:
        gc.enable()
    assert len(made) >= 5  # each failure dropped its instance
    assert all(instance in pool._idle for instance in open_stores), open_stores
    assert await get(http, "/probe/bytes?n=2") == (200, b"xx")  # the pool serves on


async def test_outgoing_request_allowed_by_the_link(
    served: tuple[HostRuntime, aiohttp.ClientSession], upstream: str
) -> None:
    _, http = served
    assert await get(http, f"/probe/fetch?url={upstream}/hello") == (
        200,
        b"200\nhello from upstream",
    )
    # Redirects are not followed: the component sees the 302 itself.
    assert await get(http, f"/probe/fetch?url={upstream}/redirect") == (200, b"302\n")


async def test_outgoing_request_denied(
    served: tuple[HostRuntime, aiohttp.ClientSession], upstream: str
) -> None:
    _, http = served
    denied = b"error ErrorCode_HttpRequestDenied\n"
    # No http-client link: every destination is denied.
    assert await get(http, f"/unlinked/fetch?url={upstream}/hello") == (200, denied)
    # A link that allows 127.0.0.1 does not allow localhost, nor https.
    port = upstream.rsplit(":", 1)[1]
    assert await get(http, f"/probe/fetch?url=http://localhost:{port}/hello") == (200, denied)
    assert await get(http, f"/probe/fetch?url=https://127.0.0.1:{port}/") == (200, denied)


async def test_counter_counts_in_keyvalue_and_fetches(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    for count in (1, 2):
        async with http.get("/counter") as response:
            assert response.status == 200
            assert await response.json() == {
                "count": count,
                "fetched": {"status": 200, "body": "hello from upstream"},
            }


async def test_environment_only_from_config(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    _, http = served
    assert b"GREETING=hi\n" in (await get(http, "/probe/env"))[1]
    assert b"GREETING" not in (await get(http, "/unlinked/env"))[1]


async def test_own_contract_components_unchanged(
    served: tuple[HostRuntime, aiohttp.ClientSession],
) -> None:
    runtime, http = served
    assert await get(http, "/own") == (200, b"Hello from wasmlattice!\n")
    # Served by the host's own WASI too, and tried on the event loop's thread first.
    assert runtime.get("own").pool.inline.attempts >= 1


def test_versions_match_by_semver() -> None:
    assert compatible("wasi:http/types@0.2.9", "wasi:http/types@0.2.0")
    assert not compatible("wasi:http/types@0.3.0", "wasi:http/types@0.2.0")
    assert compatible("wasi:keyvalue/store@0.2.0-draft", "wasi:keyvalue/store@0.2.0-draft")
    assert not compatible("wasi:keyvalue/store@0.2.0-draft2", "wasi:keyvalue/store@0.2.0-draft")
    assert compatible("a:b/c@1.4.0", "a:b/c@1.0.0") and not compatible("a:b/c@0.0.2", "a:b/c@0.0.1")


def test_allowed_destinations() -> None:
    policy = HttpClientPolicy.from_config(
        {"allow": "http://127.0.0.1:*, https://*.example.com,https://api.example.org"}
    )
    assert policy.allows("http", "127.0.0.1:8080") and policy.allows("http", "127.0.0.1")
    assert not policy.allows("https", "127.0.0.1:8080")
    assert policy.allows("https", "a.b.example.com") and not policy.allows("https", "example.com")
    assert policy.allows("https", "api.example.org:443")
    assert not policy.allows("https", "api.example.org:8443")
    assert not HttpClientPolicy().allows("http", "127.0.0.1")
    assert Destination.parse("http://[::1]:*") == Destination("http", "::1", None)
    with pytest.raises(ValueError, match="scheme://host"):
        HttpClientPolicy.from_config({"allow": "127.0.0.1"})


WIT_NEWER_KEYVALUE = """
package wasi:keyvalue@0.2.0-draft2;
interface store { get: func(key: string) -> option<string>; }
"""
WIT_WORLD = """
package test:versions;
world newer { import wasi:keyvalue/store@0.2.0-draft2; import wasi:http/types@0.3.0; }
"""


async def test_unservable_versions_are_refused_naming_them(
    tmp_path: Path, compile_cache: Path
) -> None:
    wasm_tools = shutil.which("wasm-tools") or str(Path(sys.executable).parent / "wasm-tools")
    wit = tmp_path / "wit"
    (wit / "deps" / "keyvalue").mkdir(parents=True)
    (wit / "deps" / "http").mkdir(parents=True)
    (wit / "world.wit").write_text(WIT_WORLD)
    (wit / "deps" / "keyvalue" / "store.wit").write_text(WIT_NEWER_KEYVALUE)
    (wit / "deps" / "http" / "types.wit").write_text(
        "package wasi:http@0.3.0;\ninterface types { ping: func(); }\n"
    )
    core, component = tmp_path / "core.wasm", tmp_path / "newer.wasm"
    for cmd in (
        [wasm_tools, "component", "embed", "--dummy", str(wit), "-w", "newer", "-o", str(core)],
        [wasm_tools, "component", "new", str(core), "-o", str(component)],
    ):
        await asyncio.to_thread(subprocess.run, cmd, check=True, capture_output=True)
    runtime = HostRuntime(
        compile_cache, {"memory": MemoryKeyValue()}, "memory", load_policy=LoadPolicy.of([tmp_path])
    )
    try:
        spec = ComponentSpec("newer", str(component), links=(LinkSpec(KEYVALUE, {}),))
        with pytest.raises(LinkError) as raised:
            await runtime.start(spec)
    finally:
        await runtime.close()
    message = str(raised.value)
    assert (
        "wasi:keyvalue/store@0.2.0-draft2 (this host provides wasi:keyvalue/store@0.2.0-draft)"
        in message
    )
    assert "wasi:http/types@0.3.0 (this host serves wasi:http/types@0.2.0 to 0.2.x" in message
