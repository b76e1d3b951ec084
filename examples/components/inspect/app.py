"""The inspect component: reports which ambient authority its WASI context lets through.

Built with componentize-py against the `http-hello` world. On each request it
tries to read the environment, arguments, filesystem and stdin, and to reach
the host over TCP, UDP and DNS, then answers 200 with a JSON report. It never
lets a failed probe escape: a sandbox probe that traps would prove nothing
about the probes after it. It also writes one marker line to stdout and one to
stderr, so a test can see that guest output reaches the host log.

The request's query string names the ports to aim at (`port=N` for TCP,
`udp_port=N` for UDP); without them those probes are skipped.

componentize-py's Python ships without the `socket` module (importing it raises
ModuleNotFoundError) but with the `_socket` C module it wraps, so the network
probes fall back to `_socket`: libc's sockets there are wasi:sockets calls. The
raw wasi:sockets probe in sockets-probe/ checks the same without Python between.
"""

import json
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from wit_world import exports
from wit_world.imports.types import Request, Response

_HEADERS = [("content-type", "application/json")]
_SOCKET_TIMEOUT_S = 2.0


def _attempt(probe: Callable[[], Any]) -> dict[str, Any]:
    """Run one probe; report its value or the exception it raised, never raise."""
    try:
        return {"ok": probe()}
    except BaseException as exc:
        # Not just Exception: a SystemExit from a probe must not end the guest either.
        failed: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
        # Multi-step probes note the step that failed (see _step).
        notes = getattr(exc, "__notes__", [])
        if notes:
            failed["step"] = notes[-1]
        return failed


def _step(name: str, action: Callable[[], Any]) -> Any:
    """Run one step of a probe, tagging a failure with the step's name."""
    try:
        return action()
    except BaseException as exc:
        exc.add_note(name)
        raise


def _read_passwd() -> str:
    with open("/etc/passwd") as f:
        return f.read(200)


def _read_stdin() -> str:
    # sys.stdin may be None when the interpreter found no usable fd 0.
    if sys.stdin is None:
        return "<sys.stdin is None>"
    return sys.stdin.read()


def _socket_module() -> Any:
    """`socket` if present, else the `_socket` C module (all componentize-py ships)."""
    try:
        import socket
    except ImportError:
        import _socket as socket
    return socket


def _tcp_connect(port: int) -> str:
    net = _socket_module()
    s = _step("socket", lambda: net.socket(net.AF_INET, net.SOCK_STREAM))
    try:
        # A timeout, so a sandbox that did let the connection out cannot hang the request.
        s.settimeout(_SOCKET_TIMEOUT_S)
        _step("connect", lambda: s.connect(("127.0.0.1", port)))
        return f"connected from {s.getsockname()!r}"
    finally:
        s.close()


def _udp_send(port: int) -> str:
    net = _socket_module()
    s = _step("socket", lambda: net.socket(net.AF_INET, net.SOCK_DGRAM))
    try:
        sent = _step("sendto", lambda: s.sendto(b"inspect udp probe", ("127.0.0.1", port)))
        return f"sent {sent} bytes"
    finally:
        s.close()


def _dns_lookup() -> list[str]:
    net = _socket_module()
    # A bytes host name: a str one is IDNA-encoded first, and the guest lacks that codec,
    # which would fail before any lookup reached WASI.
    return sorted({info[4][0] for info in net.getaddrinfo(b"localhost", 80)})


def _port(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    return int(values[0]) if values else None


def inspect(query_string: str) -> dict[str, Any]:
    query = parse_qs(query_string)
    tcp_port, udp_port = _port(query, "port"), _port(query, "udp_port")
    report: dict[str, Any] = {
        "environ": _attempt(lambda: dict(os.environ)),
        "argv": _attempt(lambda: list(sys.argv)),
        "cwd": _attempt(os.getcwd),
        "listdir_root": _attempt(lambda: sorted(os.listdir("/"))),
        "listdir_cwd": _attempt(lambda: sorted(os.listdir("."))),
        "etc_passwd": _attempt(_read_passwd),
        "stdin": _attempt(_read_stdin),
        # Both: `socket` is the Python wrapper, `_socket` the C module it would wrap.
        "socket_module": _attempt(lambda: __import__("socket").__name__),
        "_socket_module": _attempt(lambda: __import__("_socket").__name__),
        "dns": _attempt(_dns_lookup),
    }
    if tcp_port is not None:
        report["tcp_connect"] = _attempt(lambda: _tcp_connect(tcp_port))
    if udp_port is not None:
        report["udp_send"] = _attempt(lambda: _udp_send(udp_port))
    return report


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: Request) -> Response:
        report = inspect(request.query)
        # Flush explicitly: guest stdio is not a terminal, so it is block-buffered, and
        # the host only logs whole lines it has been handed.
        print("inspect stdout marker", flush=True)
        print("inspect stderr marker", file=sys.stderr, flush=True)
        body = json.dumps(report, sort_keys=True).encode()
        return Response(status=200, headers=list(_HEADERS), body=body)
