"""The daemon-member channel: msgpack frames over one end of a socket pair.

The daemon makes a ``socket.socketpair()`` per member and hands the member its
end as an inherited descriptor: nothing to name, bind or guard on disk, and
only the two processes hold it. A frame is a 4-byte big-endian length then a
msgpack map. The daemon asks, the member answers, strictly in turn (one
request at a time per member, so no ids and no reader task):

    request  {"op": "start", ...}            member -> {"ok": true, "value": ...}
                                                    or {"ok": false, "error": "..."}

Errors: ``ChannelClosed`` when the other end is gone (the member died: it will
be restarted), ``MemberError`` when the member answered that the operation
failed (a component that would not start there, say).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import msgpack

from host.errors import HostError

# A frame is at most this big: specs, routes and stats are small.
MAX_FRAME_BYTES = 16 * 2**20
_LENGTH = struct.Struct(">I")


class ChannelClosed(HostError):
    """The other end of the channel is gone."""


class MemberError(HostError):
    """A data-plane member could not do what it was asked; the message says why."""


class Channel:
    """One end of a daemon-member socket pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._turn = asyncio.Lock()

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_FRAME_BYTES)
        return cls(reader, writer)

    async def send(self, message: dict[str, Any]) -> None:
        data = msgpack.packb(message)
        if len(data) > MAX_FRAME_BYTES:
            raise MemberError(f"a channel frame of {len(data)} bytes is over {MAX_FRAME_BYTES}")
        try:
            self._writer.write(_LENGTH.pack(len(data)) + data)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ChannelClosed(f"channel closed: {exc}") from exc

    async def receive(self) -> dict[str, Any]:
        try:
            head = await self._reader.readexactly(_LENGTH.size)
            (size,) = _LENGTH.unpack(head)
            if size > MAX_FRAME_BYTES:
                raise ChannelClosed(f"a frame of {size} bytes is over {MAX_FRAME_BYTES}")
            message = msgpack.unpackb(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ChannelClosed("channel closed by the other end") from exc
        if not isinstance(message, dict):
            raise ChannelClosed(f"unexpected frame: {type(message).__name__}")
        return message

    async def request(self, op: str, timeout_s: float, **fields: Any) -> Any:
        """Ask the member to do ``op``; its answer's value, or MemberError.

        A request that times out leaves the channel out of step: the caller must
        treat the member as lost (``TimeoutError``).
        """
        async with self._turn:
            async with asyncio.timeout(timeout_s):
                await self.send({"op": op, **fields})
                reply = await self.receive()
        if not reply.get("ok"):
            raise MemberError(str(reply.get("error", "the member failed")))
        return reply.get("value")

    def close(self) -> None:
        self._writer.close()


def ok(value: Any = None) -> dict[str, Any]:
    return {"ok": True, "value": value}


def failed(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}
