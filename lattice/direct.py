"""Request/reply over NATS from a blocking thread, on a connection of that thread's own.

A component's call to a linked component on another host is made on the worker
thread running the guest, which waits for the answer. Through the process's
nats-py client, on its event loop, that costs two hand-offs between threads per
call (worker -> loop -> worker), each a wake-up of a sleeping thread: on the
2-core VM of docs/benchmarks.md, ~150 µs of a ~700 µs call. Here a worker thread
keeps a connection of its own to the same server, with the same credentials and
TLS, and speaks the few verbs a request needs (CONNECT, SUB, HPUB, MSG/HMSG,
PING/PONG) with blocking socket calls: it sends its request and reads its answer
itself.

Bounds, as on every way in: a line from the server is read up to
``MAX_LINE_BYTES``, a reply up to the server's max payload, every read within
the call's timeout. A connection that times out, or that the server closed or
answered with an error, is closed; the thread makes a new one on its next call.
Whether a request was sent is always known: ``Unsent`` says it was not (the
caller may send it another way), any other failure may come after the callee
ran.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lattice.auth import read_creds
from lattice.connection import NatsOptions, tls_context
from lattice.errors import LatticeError

__all__ = ["DirectConnection", "DirectRequests", "NoResponders", "Reply", "Unsent"]

MAX_LINE_BYTES = 64 * 1024  # a protocol line (INFO carries the server's URLs)
DEFAULT_MAX_PAYLOAD = 1 << 20  # nats-server's, should its INFO not say
CONNECT_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 32  # per process (DirectRequests)
_SEED = re.compile(rb"-----BEGIN USER NKEY SEED-----\s*(\S+)\s*-+END USER NKEY SEED-+")
_JWT = re.compile(rb"-----BEGIN NATS USER JWT-----\s*(\S+)\s*-+END NATS USER JWT-+")


class Unsent(LatticeError):
    """The request never left this process: no connection, or it failed before sending."""


class NoResponders(LatticeError):
    """No subscriber took the request (the server's 503)."""


class Reply:
    """An answer: its headers (empty when it had none) and its payload."""

    __slots__ = ("data", "headers")

    def __init__(self, headers: dict[str, str], data: bytes) -> None:
        self.headers = headers
        self.data = data


class DirectConnection:
    """One blocking connection, used by one thread at a time."""

    def __init__(self, options: NatsOptions) -> None:
        self._options = options
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._inbox = b""
        self._ids = itertools.count(1)
        self.max_payload = 0

    # -- connecting ----------------------------------------------------------------

    def connect(self) -> None:
        """Connect and authenticate, or raise Unsent naming why."""
        url = self._options.url.split(",")[0].strip()  # a cluster's first server
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.scheme not in ("nats", "tls"):
            raise Unsent(f"{parts.scheme}:// servers are reached through the event loop only")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise Unsent(f"cannot reach NATS at {host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buf = sock, bytearray()
        try:
            info = json.loads(self._verb(b"INFO ", deadline))
            tls = tls_context(self._options)
            if tls is None and (parts.scheme == "tls" or info.get("tls_required")):
                tls = ssl.create_default_context()
            if tls is not None:
                self._sock = tls.wrap_socket(sock, server_hostname=host)
            self.max_payload = int(info.get("max_payload", 0))
            connect = self._connect_fields(info, parts.username, parts.password)
            self._send(b"CONNECT %s\r\nPING\r\n" % json.dumps(connect).encode())
            self._verb(b"PONG", deadline)
            # Random: another process (or host with the same creds) must never share it.
            self._inbox = f"{self._inbox_prefix()}.{secrets.token_hex(11)}".encode()
            # PONG after the SUB: a subscription the user may not make is refused here.
            self._send(b"SUB %s.* 1\r\nPING\r\n" % self._inbox)
            self._verb(b"PONG", deadline)
        except (OSError, ValueError, LatticeError) as exc:
            self.close()
            raise Unsent(f"cannot connect to NATS at {host}:{port}: {exc}") from exc

    def _connect_fields(
        self, info: Mapping[str, Any], user: str | None, password: str | None
    ) -> dict[str, Any]:
        options = self._options
        fields: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "protocol": 1,
            "headers": True,
            "no_responders": True,
            "name": options.name,
            "lang": "python-direct",
            "version": "1",
        }
        if options.credentials_file:
            text = Path(options.credentials_file).read_bytes()
            jwt, seed = _JWT.search(text), _SEED.search(text)
            if jwt is None or seed is None or "nonce" not in info:
                raise ValueError(f"{options.credentials_file} cannot sign in (JWT, seed, nonce)")
            import nkeys  # type: ignore[import-untyped]  # nats-py's, which signs with it

            keys = nkeys.from_seed(bytearray(seed.group(1)))
            fields["jwt"] = jwt.group(1).decode()
            fields["sig"] = base64.b64encode(keys.sign(info["nonce"].encode())).decode()
            keys.wipe()  # the seed is not kept in memory longer than the sign-in
        elif options.token:
            fields["auth_token"] = options.token
        elif options.user is not None or user is not None:
            fields["user"] = options.user if options.user is not None else unquote(user or "")
            fields["pass"] = (
                options.password if options.password is not None else unquote(password or "")
            )
        return fields

    def _inbox_prefix(self) -> str:
        """A creds' user may only subscribe below its own inbox prefix (lattice.auth)."""
        if self._options.credentials_file:
            return read_creds(self._options.credentials_file).inbox_prefix
        return "_INBOX"

    # -- requests --------------------------------------------------------------------

    def request(
        self, subject: str, payload: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> Reply:
        """Send, then read until the answer; the connection is closed on any failure."""
        sock = self._sock
        if sock is None:
            raise Unsent("not connected")
        deadline = time.monotonic() + timeout_s
        self._answer_pings()
        reply_to = self._inbox + b".%d" % next(self._ids)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head_bytes = f"NATS/1.0\r\n{head}\r\n".encode()
        size = len(head_bytes) + len(payload)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(
                b"HPUB %s %s %d %d\r\n%s%s\r\n"
                % (subject.encode(), reply_to, len(head_bytes), size, head_bytes, payload)
            )
        except OSError as exc:
            self.close()
            raise Unsent(f"the request could not be sent: {exc}") from exc
        try:
            return self._read_reply(reply_to, deadline)
        except BaseException:
            self.close()  # a late answer must not be read as the next call's
            raise

    def _answer_pings(self) -> None:
        """Before a request: what the server sent meanwhile (a PING, its close)."""
        sock = self._sock
        assert sock is not None
        try:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
            if pending or select.select([sock], [], [], 0)[0]:
                self._fill(time.monotonic() + 1.0)
            while b"\r\n" in self._buf:  # whole lines only: nothing more is waited for
                self._protocol(self._line(time.monotonic()))
        except (OSError, LatticeError) as exc:
            self.close()
            raise Unsent(f"the connection was closed: {exc}") from exc

    def _read_reply(self, reply_to: bytes, deadline: float) -> Reply:
        while True:
            line = self._line(deadline)
            if line.startswith((b"HMSG ", b"MSG ")):
                fields = line.split()
                if len(fields) not in (4, 5, 6):
                    raise LatticeError(f"malformed message line {line[:80]!r}")
                with_headers = fields[0] == b"HMSG"
                total = int(fields[-1])
                head = int(fields[-2]) if with_headers else 0
                if total > (self.max_payload or DEFAULT_MAX_PAYLOAD) or not 0 <= head <= total:
                    raise LatticeError(f"a reply of {total} bytes is over the max payload")
                body = self._take(total + 2, deadline)[:total]
                if fields[1] != reply_to:
                    continue  # not ours (cannot happen: one request at a time)
                headers, status = _parse_headers(body[:head]) if with_headers else ({}, "")
                if status == "503":
                    raise NoResponders("no responders")
                return Reply(headers, bytes(body[head:]))
            self._protocol(line)

    def _protocol(self, line: bytes) -> None:
        """A line that is not a message: answer PINGs, fail on errors."""
        if line.startswith(b"PING"):
            self._send(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            raise LatticeError(f"NATS refused: {line[5:].decode(errors='replace').strip()}")
        # +OK, PONG, INFO: nothing to do

    # -- the wire --------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def _verb(self, verb: bytes, deadline: float) -> bytes:
        """The line starting with ``verb`` (PINGs answered), without the verb."""
        while True:
            line = self._line(deadline)
            if line.startswith(verb):
                return line[len(verb) :]
            self._protocol(line)

    def _line(self, deadline: float) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            if len(self._buf) > MAX_LINE_BYTES:
                raise LatticeError(f"a protocol line over {MAX_LINE_BYTES} bytes")
            self._fill(deadline)

    def _take(self, size: int, deadline: float) -> bytearray:
        while len(self._buf) < size:
            self._fill(deadline)
        taken = self._buf[:size]
        del self._buf[:size]
        return taken

    def _fill(self, deadline: float) -> None:
        sock = self._sock
        if sock is None:
            raise LatticeError("the connection is closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise LatticeError("the server closed the connection")
        self._buf += data

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _parse_headers(block: bytes | bytearray) -> tuple[dict[str, str], str]:
    """The headers of an HMSG and its status (``NATS/1.0 503`` -> "503")."""
    lines = block.decode("utf-8", errors="replace").split("\r\n")
    status = lines[0][len("NATS/1.0") :].strip().split(" ", 1)[0] if lines else ""
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers, status


class DirectRequests:
    """A ``DirectConnection`` per thread, made on its first request; ``close`` ends all.

    At most ``MAX_CONNECTIONS`` at once: a host's worker threads are many (512 at the
    most), and threads past that send through the event loop (``Unsent``).
    """

    def __init__(self, options: NatsOptions) -> None:
        self._options = options
        self._local = threading.local()
        self._all: list[DirectConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def connection(self) -> DirectConnection:
        """This thread's connection, connected; Unsent when none can be made."""
        conn: DirectConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn._sock is None:
            if self._closed:
                raise Unsent("the host is stopping")
            with self._lock:
                self._all = [c for c in self._all if c._sock is not None]
                if len(self._all) >= MAX_CONNECTIONS:
                    raise Unsent(f"{MAX_CONNECTIONS} threads have connections of their own")
            conn = DirectConnection(self._options)
            conn.connect()
            with self._lock:
                self._all.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
