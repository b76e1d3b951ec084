"""Invocations from a worker thread on its own NATS connection (``lattice.direct``):
the same answers and errors as ``lattice.invoke.invoke``, under every way a host
authenticates, and a fall-back to the event loop's connection when it cannot connect.

Real nats-server, real nats-py responders (``serve_component``); the blocking calls
run in threads (``asyncio.to_thread``) while the loop serves the responders.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from host.exports import CodecCache, RemoteCalls
from lattice import direct
from lattice.connection import Connection, NatsOptions, connect
from lattice.direct import DirectConnection, DirectRequests, Unsent
from lattice.errors import RemoteError, RequestTimeout
from lattice.invoke import FUNC_HEADER, PayloadTooLarge, invoke_direct, serve_component
from lattice.natsd import NatsServer
from lattice.subjects import Subjects
from tests.test_auth import tls_server, token_server, user_server
from tests.test_roles import Roles, roles

__all__ = ["roles", "tls_server", "token_server", "user_server"]

SUBJECTS = Subjects()
IFACE = "test:echo/calls"


class Trapped(Exception):
    status = "trapped"  # the error reply's status header


async def echo(func: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The function name and the body back; ``fail`` fails, ``slow`` answers late."""
    if func == "fail":
        raise Trapped("it failed on purpose")
    if func == "slow":
        await asyncio.sleep(1.0)
    return f"{func}:{headers.get(FUNC_HEADER)}:".encode() + body


@pytest.fixture
async def responder(nats_server: NatsServer) -> AsyncIterator[Connection]:
    nc = await connect(NatsOptions(nats_server.url))
    serving = await serve_component(nc, SUBJECTS, "echo", IFACE, echo, concurrency=4)
    yield nc
    await serving.close()
    await nc.close()


def call(requests: DirectRequests, func: str, body: bytes = b"hi", timeout_s: float = 5.0) -> bytes:
    return invoke_direct(requests, SUBJECTS, "echo", IFACE, func, body, timeout_s=timeout_s)


async def test_a_call_is_answered_with_its_function_named(
    nats_server: NatsServer, responder: Connection
) -> None:
    requests = DirectRequests(NatsOptions(nats_server.url))
    try:
        assert await asyncio.to_thread(call, requests, "greet") == b"greet:greet:hi"
        # The same thread keeps its connection: a second call makes no new one.
        first = await asyncio.to_thread(lambda: (requests.connection(), call(requests, "a")))
        assert first[1] == b"a:a:hi"
    finally:
        requests.close()


async def test_errors_are_those_of_invoke(nats_server: NatsServer, responder: Connection) -> None:
    requests = DirectRequests(NatsOptions(nats_server.url))
    try:
        with pytest.raises(RemoteError, match="it failed on purpose") as failed:
            await asyncio.to_thread(call, requests, "fail")
        assert failed.value.code == "trapped"
        with pytest.raises(RequestTimeout, match="no host runs component nobody"):
            await asyncio.to_thread(
                invoke_direct, requests, SUBJECTS, "nobody", IFACE, "f", b"", timeout_s=2.0
            )
        with pytest.raises(RequestTimeout, match=r"did not answer within 0\.2 s"):
            await asyncio.to_thread(call, requests, "slow", b"", 0.2)
        # The late answer is not taken for the next call's: that connection was closed.
        await asyncio.sleep(1.0)
        assert await asyncio.to_thread(call, requests, "next") == b"next:next:hi"
    finally:
        requests.close()


async def test_a_connection_the_server_closed_is_replaced_before_sending(
    tmp_path: Path,
) -> None:
    """As a server closes a connection nobody reads (its pings unanswered): the next call
    sees it closed before sending, and goes out on a new connection."""
    server = NatsServer(tmp_path / "nats").start()
    requests = DirectRequests(NatsOptions(server.url))
    nc = await connect(NatsOptions(server.url))
    try:
        serving = await serve_component(nc, SUBJECTS, "echo", IFACE, echo, concurrency=1)

        def first() -> DirectConnection:
            assert call(requests, "one") == b"one:one:hi"
            return requests.connection()

        old = await asyncio.to_thread(first)
        await serving.close()
        server.stop()
        server = NatsServer(tmp_path / "nats", port=server.port).start()
        serving = await serve_component(nc, SUBJECTS, "echo", IFACE, echo, concurrency=1)
        await reconnected(nc)

        def second() -> tuple[bytes, DirectConnection]:
            return call(requests, "two"), requests.connection()

        answer, new = await asyncio.to_thread(second)
        assert answer == b"two:two:hi"
        assert new is not old
        await serving.close()
    finally:
        requests.close()
        await nc.close()
        server.stop()


async def reconnected(nc: Connection) -> None:
    """Until nats-py is connected again and the server has its subscriptions (a PONG):
    a PING sent on the old connection before nats-py saw it gone is never answered."""
    for _ in range(30):
        try:
            await nc.flush(timeout=1)
            return
        except Exception:  # FlushTimeoutError, or not connected yet
            await asyncio.sleep(0.2)
    raise AssertionError("nats-py did not reconnect")


async def test_threads_past_the_cap_are_refused_a_connection(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct, "MAX_CONNECTIONS", 1)
    requests = DirectRequests(NatsOptions(nats_server.url))

    def in_a_new_thread() -> BaseException | None:
        outcome: list[BaseException | None] = []

        def connect_here() -> None:
            try:
                requests.connection()
            except Unsent as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=connect_here)
        thread.start()
        thread.join()
        return outcome[0]

    try:
        assert await asyncio.to_thread(in_a_new_thread) is None
        refused = await asyncio.to_thread(in_a_new_thread)
        assert "1 threads have connections of their own" in str(refused)
    finally:
        requests.close()


async def test_no_server_is_unsent(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    url = server.url
    server.stop()
    with pytest.raises(Unsent, match="cannot reach NATS"):
        await asyncio.to_thread(DirectConnection(NatsOptions(url)).connect)


async def serve_and_call(options: NatsOptions, responder_options: NatsOptions) -> bytes:
    nc = await connect(responder_options, reconnect=False)
    requests = DirectRequests(options)
    try:
        serving = await serve_component(nc, SUBJECTS, "echo", IFACE, echo, concurrency=1)
        try:
            return await asyncio.to_thread(call, requests, "auth")
        finally:
            await serving.close()
    finally:
        requests.close()
        await nc.close()


async def test_user_and_password(user_server: NatsServer) -> None:
    options = NatsOptions(user_server.url, user="ops", password="s3cret")
    assert await serve_and_call(options, options) == b"auth:auth:hi"
    wrong = NatsOptions(user_server.url, user="ops", password="nope")
    with pytest.raises(Unsent, match="Authorization Violation"):
        await asyncio.to_thread(DirectConnection(wrong).connect)


async def test_token(token_server: NatsServer) -> None:
    options = NatsOptions(token_server.url, token="t0ken")
    assert await serve_and_call(options, options) == b"auth:auth:hi"


async def test_tls_with_a_private_ca(tls_server: tuple[NatsServer, Path]) -> None:
    server, ca = tls_server
    options = NatsOptions(server.url, tls_ca_file=str(ca))
    assert await serve_and_call(options, options) == b"auth:auth:hi"
    # Without the CA the server's certificate is not trusted.
    with pytest.raises(Unsent, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.to_thread(DirectConnection(NatsOptions(server.url)).connect)


async def test_a_host_role_may_call_another_host(roles: Roles) -> None:
    """With a .creds file (a JWT, the nonce signed with its seed): a host's creds allow
    its own inbox prefix and the invocation subjects only; the direct connection
    subscribes where it may, and another host answers."""
    caller, callee = roles.options("host", "h1"), roles.options("host", "h2")
    assert await serve_and_call(caller, callee) == b"auth:auth:hi"


async def test_remote_calls_go_direct_and_fall_back_to_the_loop(
    nats_server: NatsServer, responder: Connection, tmp_path: Path
) -> None:
    """RemoteCalls sends on the worker's own connection; one it cannot make sends through
    the event loop's connection instead, and the call is answered all the same."""
    loop = asyncio.get_running_loop()
    nc = await connect(NatsOptions(nats_server.url))
    remote = RemoteCalls(nc, SUBJECTS, RawCodecs(), loop, 5.0, NatsOptions(nats_server.url))
    unreachable = NatsServer(tmp_path / "gone").start()
    gone_url = unreachable.url
    unreachable.stop()
    fallback = RemoteCalls(nc, SUBJECTS, RawCodecs(), loop, 5.0, NatsOptions(gone_url))
    try:
        assert await asyncio.to_thread(raw_invoke, remote) == b"f:f:raw"
        assert remote.direct_calls == 1
        assert await asyncio.to_thread(raw_invoke, fallback) == b"f:f:raw"
        assert fallback.direct_calls == 0
    finally:
        remote.close()
        fallback.close()
        await nc.close()


class _RawCodec:
    """Bytes through unchanged: RemoteCalls' transport alone, without a WIT type."""

    def encode_params(self, args: tuple[bytes, ...]) -> bytes:
        return args[0]

    def decode_result(self, data: bytes) -> bytes:
        return data


class RawCodecs(CodecCache):
    def for_func(self, func_type: object) -> Any:
        return _RawCodec()


def raw_invoke(remote: RemoteCalls) -> bytes:
    result: bytes = remote.invoke("echo", IFACE, "f", (b"raw",), None)
    return result


async def test_each_connection_has_an_inbox_no_other_process_can_share(
    nats_server: NatsServer,
) -> None:
    """Two hosts subscribed to one inbox would each read the other's answers: the inbox is
    random, not derived from anything another process could also have (a memory address)."""

    def inboxes() -> list[bytes]:
        seen = []
        for _ in range(5):
            conn = DirectConnection(NatsOptions(nats_server.url))
            conn.connect()
            seen.append(conn._inbox)
            conn.close()
            del conn
        return seen

    seen = await asyncio.to_thread(inboxes)
    assert len(set(seen)) == len(seen)
    assert all(len(inbox.rsplit(b".", 1)[1]) >= 20 for inbox in seen)


async def test_arguments_over_the_max_payload_are_refused_with_both_sizes(
    nats_server: NatsServer, responder: Connection
) -> None:
    requests = DirectRequests(NatsOptions(nats_server.url))
    try:
        with pytest.raises(PayloadTooLarge, match=r"is 2097152 bytes, over .* 1048576 bytes"):
            await asyncio.to_thread(call, requests, "big", bytes(2 << 20))
        assert await asyncio.to_thread(call, requests, "after") == b"after:after:hi"
    finally:
        requests.close()
