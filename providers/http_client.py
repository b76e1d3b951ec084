"""The http-client provider: outgoing HTTP for components, deny by default.

A component reaches the network only through ``wasi:http/outgoing-handler``, and
only where the config of its ``http-client`` link allows:

- ``allow``: comma-separated destinations ``scheme://host[:port]``. ``scheme`` is
  ``http``, ``https`` or ``*``; ``host`` is a name, an IP address, ``*.example.com``
  (any name below example.com, not example.com itself) or ``*``; ``port`` is a
  number or ``*``, and defaults to the scheme's port. Nothing is allowed when the
  key is missing or empty. Example: ``allow=http://127.0.0.1:*,https://api.example.com``.
- ``connect_timeout_s``, ``first_byte_timeout_s``, ``between_bytes_timeout_s``:
  bounds on connecting, on waiting for the response head, and on each gap in
  the response body. A component may ask for less (``request-options``), never more.
- ``max_request_bytes`` / ``max_response_bytes``: the body a component may send,
  and the body it may read.

A request to anything else is refused before a socket is opened
(``HTTP-request-denied`` in the WIT). Redirects are not followed: a 3xx
reaches the component as it is. Failures are ``ClientError`` carrying the name
of the WIT ``error-code`` case, so the runtime can hand them to the guest;
nothing here knows about wasm.

``HttpClient`` holds one aiohttp session for the host (made on first use, on
the event loop; ``close()`` ends it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = [
    "ClientError",
    "Destination",
    "HttpClient",
    "HttpClientPolicy",
    "OutgoingCall",
    "OutgoingReply",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
# Connection-level headers: they describe one hop, so neither side forwards them.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)
# The framing of a request is the client's: aiohttp sets Content-Length from the body
# it sends. Passed on, a component's value would be sent as written (every copy of
# it), and aiohttp would cut a longer body to it and send a shorter one under it.
NOT_FORWARDED = HOP_BY_HOP | {"content-length"}


class ClientError(Exception):
    """An outgoing request failed; ``code`` names the WIT ``error-code`` case."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Destination:
    """One allowed destination: scheme (or ``*``), host pattern, port (None: any)."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> Destination:
        scheme, sep, rest = text.strip().partition("://")
        if not sep or scheme not in ("http", "https", "*") or not rest or "/" in rest:
            raise ValueError(f"allowed destination {text!r} is not scheme://host[:port]")
        host, port_text = _split_host_port(rest)
        if port_text is None:
            if scheme == "*":
                raise ValueError(f"allowed destination {text!r}: scheme * needs a port")
            return cls(scheme, host.lower(), DEFAULT_PORTS[scheme])
        if port_text == "*":
            return cls(scheme, host.lower(), None)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"allowed destination {text!r} has a bad port")
        return cls(scheme, host.lower(), int(port_text))

    def allows(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme not in ("*", scheme) or self.port not in (None, port):
            return False
        host = host.lower()
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


def _split_host_port(authority: str) -> tuple[str, str | None]:
    """``host[:port]`` with IPv6 hosts in brackets; the host comes back without them."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"bad authority {authority!r}")
        rest = authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad authority {authority!r}")
        return authority[1:end], (rest[1:] or None) if rest else None
    host, sep, port = authority.rpartition(":")
    if not sep:
        return authority, None
    return host, port


@dataclass(frozen=True)
class HttpClientPolicy:
    """What one component's outgoing HTTP may reach, and the bounds on each request."""

    allow: tuple[Destination, ...] = ()
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 10.0
    between_bytes_timeout_s: float = 10.0
    max_request_bytes: int = 4 * 2**20
    max_response_bytes: int = 16 * 2**20

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> HttpClientPolicy:
        """The policy of an http-client link; ValueError names a bad key."""
        allow = tuple(
            Destination.parse(item) for item in config.get("allow", "").split(",") if item.strip()
        )
        values: dict[str, Any] = {}
        for key in ("connect_timeout_s", "first_byte_timeout_s", "between_bytes_timeout_s"):
            if key in config:
                values[key] = _positive(key, config[key], float)
        for key in ("max_request_bytes", "max_response_bytes"):
            if key in config:
                values[key] = _positive(key, config[key], int)
        return cls(allow, **values)

    def allows(self, scheme: str, authority: str) -> bool:
        """Whether ``scheme://authority`` is an allowed destination."""
        if scheme not in DEFAULT_PORTS:
            return False
        try:
            host, port_text = _split_host_port(authority)
        except ValueError:
            return False
        if port_text is None:
            port = DEFAULT_PORTS[scheme]
        elif port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            return False
        if not host:
            return False
        return any(d.allows(scheme, host, port) for d in self.allow)


def _positive(key: str, text: str, kind: type[float] | type[int]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"http-client config {key}={text!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"http-client config {key} must be positive")
    return value


@dataclass(frozen=True)
class OutgoingCall:
    """One request as a component made it; timeouts the component asked for (or None)."""

    method: str
    scheme: str
    authority: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: bytes
    connect_timeout_s: float | None = None
    first_byte_timeout_s: float | None = None
    between_bytes_timeout_s: float | None = None


class OutgoingReply:
    """A response head, and its body read chunk by chunk under the policy's bounds."""

    def __init__(
        self, response: aiohttp.ClientResponse, between_bytes_s: float, max_bytes: int
    ) -> None:
        self.status = response.status
        self.headers = [
            (name.decode("latin-1").lower(), value) for name, value in response.raw_headers
        ]
        self._response = response
        self._between_bytes_s = between_bytes_s
        self._max_bytes = max_bytes
        self._read = 0

    async def read_chunk(self) -> bytes:
        """The next chunk of the body; b"" at its end. Raises ClientError."""
        try:
            async with asyncio.timeout(self._between_bytes_s):
                chunk = await self._response.content.readany()
        except TimeoutError:
            self.release()
            raise ClientError("connection-read-timeout") from None
        except aiohttp.ClientError as exc:
            self.release()
            raise ClientError("HTTP-protocol-error", str(exc)) from exc
        self._read += len(chunk)
        if self._read > self._max_bytes:
            self.release()
            raise ClientError("HTTP-response-body-size", f"over {self._max_bytes} bytes")
        if not chunk:
            self.release()
        return chunk

    def release(self) -> None:
        self._response.close()


class HttpClient:
    """Sends components' requests under their policies; one per host."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientError("internal-error", "the host is shutting down")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    async def send(self, policy: HttpClientPolicy, call: OutgoingCall) -> OutgoingReply:
        """The response head of ``call``; raises ClientError (``HTTP-request-denied``...)."""
        if not policy.allows(call.scheme, call.authority):
            raise ClientError("HTTP-request-denied", f"{call.scheme}://{call.authority}")
        if len(call.body) > policy.max_request_bytes:
            raise ClientError("HTTP-request-body-size", f"over {policy.max_request_bytes} bytes")
        connect = _bound(policy.connect_timeout_s, call.connect_timeout_s)
        first_byte = _bound(policy.first_byte_timeout_s, call.first_byte_timeout_s)
        between = _bound(policy.between_bytes_timeout_s, call.between_bytes_timeout_s)
        headers = [(k, v.decode("latin-1")) for k, v in call.headers if k not in NOT_FORWARDED]
        url = f"{call.scheme}://{call.authority}{call.path_with_query or '/'}"
        session = self._get_session()
        try:
            async with asyncio.timeout(connect + first_byte):
                response = await session.request(
                    call.method,
                    url,
                    headers=headers,
                    data=call.body or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(sock_connect=connect, sock_read=between),
                )
        except TimeoutError:
            raise ClientError("HTTP-response-timeout", url) from None
        except aiohttp.ClientConnectorDNSError as exc:
            raise ClientError("DNS-error", str(exc)) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ClientError("connection-refused", str(exc)) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise ClientError("connection-terminated", str(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise ClientError("HTTP-request-URI-invalid", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ClientError("HTTP-protocol-error", str(exc)) from exc
        except ValueError as exc:  # a header aiohttp will not send
            raise ClientError("HTTP-request-header-size", str(exc)) from exc
        return OutgoingReply(response, between, policy.max_response_bytes)

    async def close(self) -> None:
        """End the session; idempotent."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _bound(limit: float, asked: float | None) -> float:
    return limit if asked is None else max(0.001, min(limit, asked))
