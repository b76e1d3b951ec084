"""Accepting HTTP connections in Python (providers.http_accept): listening, pausing, closing."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from providers import http_accept
from providers.http_accept import Acceptor, listening_sockets

pytestmark = pytest.mark.both_loops


async def test_it_listens_on_each_address_and_passes_every_connection_on() -> None:
    sockets = await listening_sockets("127.0.0.1", 0)
    assert len(sockets) == 1 and sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    port = sockets[0].getsockname()[1]
    accepted: list[socket.socket] = []
    acceptor = Acceptor(sockets, accepted.append)
    writers = []
    try:
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
        for _ in range(100):
            if len(accepted) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(accepted) == 3
    finally:
        acceptor.close()
        acceptor.close()  # idempotent
        for conn in accepted:
            conn.close()
        for writer in writers:
            writer.close()
    assert sockets[0].fileno() == -1
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_taken_port_is_an_os_error() -> None:
    (first,) = await listening_sockets("127.0.0.1", 0)
    try:
        with pytest.raises(OSError) as raised:
            await listening_sockets("127.0.0.1", first.getsockname()[1])
        assert raised.value.errno == errno.EADDRINUSE
    finally:
        first.close()


class _OutOfDescriptors(socket.socket):
    """A listener whose first accept fails as it does when the process has no fd left."""

    failures = 1

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


async def test_running_out_of_descriptors_pauses_accepting_then_it_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_accept, "PAUSE_S", 0.2)
    listener = _OutOfDescriptors(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    accepted: list[socket.socket] = []
    acceptor = Acceptor([listener], accepted.append)
    loop = asyncio.get_running_loop()
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        started = loop.time()
        for _ in range(200):
            if accepted:
                break
            await asyncio.sleep(0.01)
        # Taken after the pause (the listener stayed readable: no spinning meanwhile).
        assert len(accepted) == 1 and loop.time() - started >= 0.2
        assert listener.failures == 0
        writer.close()
    finally:
        acceptor.close()
        for conn in accepted:
            conn.close()
