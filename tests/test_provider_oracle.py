"""A provider's config URL cannot make it an oracle for internal services.

Whoever sets ``redis_url`` picks the host:port the provider connects to; what a
service there answers must never come back in an error, a log line or a reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lattice.natsd import free_port
from providers.keyvalue import KeyValueError
from providers.redis_kv import RedisKeyValue

SECRET = b"internal-admin-token-4711"


@pytest.fixture
async def internal_service() -> AsyncIterator[int]:
    """A TCP service that answers anything with text holding a secret."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Token: " + SECRET + b"\r\n\r\n-ERR " + SECRET + b"\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def test_a_service_that_is_not_redis_is_not_quoted(internal_service: int) -> None:
    backend = RedisKeyValue(f"redis://127.0.0.1:{internal_service}/0")
    try:
        with pytest.raises(KeyValueError) as caught:
            await backend.ping()
    finally:
        await backend.close()
    message = str(caught.value)
    assert SECRET.decode() not in message, message
    assert "HTTP" not in message and "X-Token" not in message, message
    assert f"127.0.0.1:{internal_service}" in message  # which URL failed is still named


async def test_a_closed_port_names_the_refusal() -> None:
    port = free_port()
    backend = RedisKeyValue(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(KeyValueError, match=r"refused|connect"):
            await backend.ping()
    finally:
        await backend.close()
