"""A wasi:http component for the tests: one behaviour per last path segment.

    /echo          streams the request body back, chunk by chunk as it arrives
    /log-and-echo  prints a marker to stdout, then echoes as /echo does
    /length        reads the whole request body, then answers its length
    /bytes?n=N     answers N bytes, written in 4096-byte chunks
    /no-response   returns without setting a response
    /panic         raises (the guest traps)
    /loop          spins forever (only the deadline stops it)
    /stdout        prints a marker to stdout and stderr
    /env           answers the environment, one NAME=value per line
    /fetch?url=U   fetches U and answers its status and body, or the error-code's name
    /headers       answers the request's method, scheme, authority, path and headers

Built with componentize-py against `wasi:http/proxy`.
"""

import os
import sys
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, streams
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)

CHUNK = 4096


def start(out: ResponseOutparam, status: int = 200, ctype: bytes = b"text/plain") -> OutgoingBody:
    """Set the response head; returns the body to write."""
    response = OutgoingResponse(Fields.from_list([("content-type", ctype)]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    return body


def answer(out: ResponseOutparam, data: bytes, status: int = 200) -> None:
    body = start(out, status)
    with body.write() as stream:
        write(stream, data)
    OutgoingBody.finish(body, None)


def write(stream: streams.OutputStream, data: bytes) -> None:
    for i in range(0, len(data), CHUNK):
        stream.blocking_write_and_flush(data[i : i + CHUNK])


def chunks(body: IncomingBody):
    """The chunks of an incoming body, as they arrive."""
    with body.stream() as stream:
        while True:
            try:
                yield stream.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    return
                raise


def fetch(url: str) -> bytes:
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Https() if scheme == "https" else Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return f"error {type(e.value).__name__}\n".encode()
    with future.subscribe() as pollable:
        pollable.block()
    result = future.get()
    if isinstance(result.value, Err):
        return f"error {type(result.value.value).__name__}\n".encode()
    response = result.value.value
    body = response.consume()
    data = b"".join(chunks(body))
    return f"{response.status()}\n".encode() + data


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        full_path, _, query = (request.path_with_query() or "/").partition("?")
        path = "/" + full_path.rsplit("/", 1)[-1]  # wherever the probe is routed
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if path in ("/echo", "/log-and-echo"):
            if path == "/log-and-echo":
                print("wasi-probe echo marker")
            body = start(response_out, ctype=b"application/octet-stream")
            with body.write() as stream:
                for chunk in chunks(request.consume()):
                    write(stream, chunk)
            OutgoingBody.finish(body, None)
        elif path == "/length":
            size = sum(len(chunk) for chunk in chunks(request.consume()))
            answer(response_out, f"{size}\n".encode())
        elif path == "/bytes":
            answer(response_out, b"x" * int(params.get("n", "0")))
        elif path == "/no-response":
            return
        elif path == "/panic":
            raise RuntimeError("the probe panics on purpose")
        elif path == "/loop":
            while True:
                pass
        elif path == "/stdout":
            print("wasi-probe stdout marker")
            print("wasi-probe stderr marker", file=sys.stderr)
            answer(response_out, b"printed\n")
        elif path == "/env":
            lines = [f"{k}={v}" for k, v in sorted(os.environ.items())]
            answer(response_out, "".join(line + "\n" for line in lines).encode())
        elif path == "/fetch":
            answer(response_out, fetch(params["url"]))
        elif path == "/headers":
            lines = [
                f"method {type(request.method()).__name__}",
                f"scheme {type(request.scheme()).__name__}",
                f"authority {request.authority()}",
                f"path {request.path_with_query()}",
            ]
            with request.headers() as headers:
                lines += [f"{k}: {v.decode()}" for k, v in headers.entries()]
            answer(response_out, "\n".join(lines).encode() + b"\n")
        else:
            answer(response_out, b"no such probe\n", status=404)
