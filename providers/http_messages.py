"""What the http-server provider's handler sees of one HTTP/1.1 exchange.

``providers.http_protocol`` parses a request head into an ``IncomingRequest``
and hands it, with a ``ResponseWriter``, to the handler (``providers.http_server``).

- ``IncomingRequest``: method, target (raw path and query), the decoded path
  and query, raw header pairs, Host, version, keep-alive, Content-Length.
- ``IncomingBody``: the request body as it arrives. The connection reads its
  socket for the body only while a reader waits in ``readany`` (flow control:
  a chunk not yet consumed, or a body whose bytes are not reserved yet, stops
  reading). ``Expect: 100-continue`` is answered ``100 Continue`` when the
  body is first read, so a client that waits for it sends nothing the server
  refuses anyway. ``drain`` reads and drops what is left (lingering).
- ``ResponseWriter``: the answer. A whole one (``send``, ``text``,
  ``complete``) goes out in one write with its Content-Length; a streamed one
  (``start``, ``write``, ``finish``: a ``ResponseSink``) with the component's
  Content-Length when it gave one, else chunked (HTTP/1.0: ended by closing
  the connection). A streamed body is held to the length its head announced: a
  write past it, or a finish short of it, raises ValueError and sends nothing
  (the caller then aborts). ``abort`` ends the connection mid-response so the
  client cannot take it as complete. HEAD answers carry no body, nor do 1xx, 204 and
  304 ones. Framing headers are the server's own: a handler's Connection,
  Keep-Alive, Transfer-Encoding, Upgrade, TE and Content-Length are dropped
  (a streamed response's Content-Length is kept as its framing). Every answer
  has a Date; one with a body and no Content-Type says
  ``application/octet-stream``.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import time
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote, unquote_plus

import httptools

__all__ = ["BodyFailure", "IncomingBody", "IncomingRequest", "ResponseWriter", "Wire"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Response headers the server sets itself (connection framing), dropped from a handler's.
_OWN_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "content-length"}
)
_TEXT_TYPE = b"Content-Type: text/plain; charset=utf-8\r\n"
_BINARY_TYPE = b"Content-Type: application/octet-stream\r\n"


class Wire(Protocol):
    """What a request's body and answer need of their connection."""

    loop: asyncio.AbstractEventLoop

    def update_reading(self) -> None:
        """Read the socket or stop, as the body's reader needs."""

    def write_interim(self, data: bytes) -> None:
        """An interim (1xx) answer."""

    def write_answer(self, data: bytes) -> None:
        """The first bytes of the answer (marks a tracked connection IDLE)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Until the write buffer is low again; ConnectionError once the client is gone."""

    def abort(self) -> None: ...


_status_lines: dict[tuple[str, int], bytes] = {}
_date: tuple[int, bytes] = (0, b"")


def _status_line(version: str, status: int) -> bytes:
    line = _status_lines.get((version, status))
    if line is None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = f"HTTP/{version} {status} {reason}\r\n".encode()
        _status_lines[(version, status)] = line
    return line


def bodiless_status(status: int) -> bool:
    """1xx, 204 and 304 answers carry no body, whatever their length says (RFC 9110 6.4.1)."""
    return status < 200 or status in (204, 304)


def length_value(value: bytes) -> int | None:
    """A Content-Length field value as a number: digits, spaces or tabs around them
    (None: not a non-negative integer)."""
    digits = value.strip(b" \t")
    return int(digits) if digits.isdigit() else None


def _date_header() -> bytes:
    global _date
    now = int(time.time())
    if now != _date[0]:  # formatted once a second
        _date = (now, f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode())
    return _date[1]


class BodyFailure(Exception):
    """The request body cannot be read: malformed, or the connection is gone."""


class IncomingRequest:
    """A parsed request head; ``body`` is None when the request has none."""

    __slots__ = (
        "body",
        "content_length",
        "headers",
        "host",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "version",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        host: str,
        version: str,
        keep_alive: bool,
        content_length: int | None,
        body: IncomingBody | None,
    ) -> None:
        self.method = method
        if target.startswith("/"):
            path, _, query = target.partition("?")
        else:  # absolute form (or "*")
            url = httptools.parse_url(target.encode())
            path = (url.path or b"/").decode("latin-1")
            query = (url.query or b"").decode("latin-1")
            target = f"{path}?{query}" if query else path
            if url.host:  # RFC 9112 3.2.2: its authority, not the Host header, names the host
                host = url.host.decode("latin-1")
                if url.port is not None:
                    host += f":{url.port}"
        self.target = target  # the raw path and query (origin form)
        # Decoded as aiohttp (yarl) did: the path fully, the query's escapes but & and =.
        self.path = unquote(path) if "%" in path else path
        self.query = _decode_query(query) if "%" in query or "+" in query else query
        self.headers = headers
        self.host = host  # the Host header (or the target's authority), "" when none
        self.version = version
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.body = body

    def text_headers(self) -> list[tuple[str, str]]:
        return [
            (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for k, v in self.headers
        ]


def _decode_query(query: str) -> str:
    return "&".join(
        "=".join(
            unquote_plus(p).replace("&", "%26").replace("=", "%3D") for p in pair.split("=", 1)
        )
        for pair in query.split("&")
    )


class IncomingBody:
    """A request body as it arrives: the connection reads the socket only while a
    reader waits here (see the module docstring)."""

    __slots__ = ("_chunks", "_conn", "_error", "_waiter", "discard", "eof", "expect_continue")

    def __init__(self, conn: Wire, expect_continue: bool) -> None:
        self._conn = conn
        self._chunks: list[bytes] = []
        self.eof = False
        self._error: BodyFailure | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.discard = False  # lingering: what arrives is dropped
        self.expect_continue = expect_continue

    @property
    def wanted(self) -> bool:
        return self._waiter is not None

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, chunk: bytes) -> None:
        if not self.discard:
            self._chunks.append(chunk)
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def fail(self, error: BodyFailure) -> None:
        if not self.eof:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            # No longer wanted from here: reading stops now, not when the reader runs.
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
            self._conn.update_reading()

    async def _wait(self) -> None:
        if self.expect_continue:
            self.expect_continue = False
            self._conn.write_interim(_CONTINUE)
        waiter = self._waiter = self._conn.loop.create_future()
        self._conn.update_reading()
        try:
            await waiter
        finally:
            if self._waiter is waiter:  # timed out or cancelled
                self._waiter = None
                self._conn.update_reading()

    async def readany(self) -> bytes:
        """What has arrived (waiting for something), b"" at the end."""
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                return data
            if self._error is not None:
                raise self._error
            if self.eof:
                return b""
            await self._wait()

    async def drain(self, timeout_s: float) -> bool:
        """Read and drop the rest; whether it ended within ``timeout_s``."""
        self.discard = True
        self.expect_continue = False  # not asked for: the client may stop sending
        self._chunks.clear()
        try:
            async with asyncio.timeout(timeout_s):
                while not self.eof and self._error is None:
                    await self._wait()
        except TimeoutError:
            return False
        return self.eof


class ResponseWriter:
    """The answer to one request (a ``ResponseSink``, plus whole-response helpers)."""

    __slots__ = (
        "_chunked",
        "_conn",
        "_empty",
        "_remaining",
        "_request",
        "finished",
        "keep_alive",
        "started",
    )

    def __init__(self, conn: Wire, request: IncomingRequest) -> None:
        self._conn = conn
        self._request = request
        self.started = False
        self.finished = False
        self.keep_alive = request.keep_alive
        self._chunked = False
        self._empty = request.method == "HEAD"
        self._remaining: int | None = None  # body bytes the head announced, not yet written

    def _head(
        self, status: int, fields: bytes, typed: bool, length: int | None, framed: bool = False
    ) -> bytes:
        """Status line and headers; ``fields`` the handler's, already encoded;
        ``framed``: they hold the body's length already."""
        request = self._request
        empty = self._empty or bodiless_status(status)
        self._empty = empty
        parts = [_status_line(request.version, status), fields]
        if not typed and length != 0 and not empty:
            parts.append(_BINARY_TYPE)
        if length is not None:
            if not bodiless_status(status):
                parts.append(b"Content-Length: %d\r\n" % length)
        elif not empty and not framed:
            if request.version == "1.1":
                self._chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # the body ends where the connection does
        parts.append(_date_header())
        if not self.keep_alive:
            if request.version == "1.1":
                parts.append(b"Connection: close\r\n")
        elif request.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _send_whole(self, head: bytes, body: bytes) -> None:
        self.started = self.finished = True
        self._conn.write_answer(head if self._empty or not body else head + body)

    def send(
        self, status: int, headers: Iterable[tuple[str, str]], body: bytes, *, close: bool = False
    ) -> None:
        """A whole response with text headers (the own contract's)."""
        fields, typed = _encode_text(headers)
        if close:
            self.keep_alive = False
        self._send_whole(self._head(status, fields, typed, len(body)), body)

    def text(self, status: int, message: str, *, close: bool = False, retry: bool = False) -> None:
        """A plain-text answer of the server's own (``close``: the connection ends)."""
        body = message.encode() + b"\n"
        if close:
            self.keep_alive = False
        fields = _TEXT_TYPE + (b"Retry-After: 1\r\n" if retry else b"")
        self._send_whole(self._head(status, fields, True, len(body)), body)

    def complete(self, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        fields, typed, _ = _encode_raw(headers)
        self._send_whole(self._head(status, fields, typed, len(body)), body)

    async def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        fields, typed, length = _encode_raw(headers)
        if length is not None:
            fields += b"Content-Length: %d\r\n" % length
        self.started = True
        head = self._head(status, fields, typed, None, framed=length is not None)
        self._remaining = None if self._empty else length
        self._conn.write_answer(head)

    async def write(self, chunk: bytes) -> None:
        if self._empty or not chunk:
            return
        remaining = self._remaining
        if remaining is not None:
            if len(chunk) > remaining:
                raise ValueError(f"a response body {len(chunk) - remaining} bytes past its length")
            self._remaining = remaining - len(chunk)
        if self._chunked:
            self._conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self._conn.write(chunk)
        await self._conn.drain()

    async def finish(self) -> None:
        if self._remaining:  # the client would wait for the rest
            raise ValueError(f"a response body {self._remaining} bytes short of its length")
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        self.finished = True

    def abort(self) -> None:
        """End the connection mid-response: the client must not take it as complete."""
        self.keep_alive = False
        self._conn.abort()


def _encode_text(headers: Iterable[tuple[str, str]]) -> tuple[bytes, bool]:
    """Encoded fields and whether a Content-Type is among them (a length given is dropped)."""
    lines = []
    typed = False
    for name, value in headers:
        low = name.lower()
        if low in _OWN_HEADERS:
            continue
        typed = typed or low == "content-type"
        lines.append(f"{name}: {value}\r\n")
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("a response header holds a line break")
    return text.encode(), typed


def _encode_raw(headers: list[tuple[str, bytes]]) -> tuple[bytes, bool, int | None]:
    """Encoded fields, whether a Content-Type is among them, the Content-Length given."""
    lines = []
    typed = False
    length = None
    for name, value in headers:
        low = name.lower()
        if low in _OWN_HEADERS:
            if low == "content-length":
                declared = length_value(value)
                if declared is None or (length is not None and declared != length):
                    raise ValueError(f"a response's Content-Length is invalid: {value!r}")
                length = declared
            continue
        typed = typed or low == "content-type"
        lines.append(b"%b: %b\r\n" % (name.encode(), value))
    raw = b"".join(lines)
    if raw.count(b"\n") != len(lines) or raw.count(b"\r") != len(lines):
        raise ValueError("a response header holds a line break")
    return raw, typed, length
