"""A wasi:http component that makes one outgoing request declaring a Content-Length
and writing what it is told, for tests/test_wasi_outgoing_length.py. Its response
(200, text) is what each call along the way gave it, one line each.

Query parameters:
    to=URL     where the request goes (http://host:port/path); POST, or GET with nobody
    cl=V       a content-length value on the request (repeat it for several)
    write=A,B  the body's chunks, in bytes (each written 4096 bytes at a time;
               chunk i is made of the letter ``"abc..."[i]``)
    nobody=1   the request is sent without taking its body
    early=1    ``handle`` is called before the body is written (else after finishing it)

Lines: "body refused", "write failed: CODE", "write closed", "finish ok" or
"finish failed: CODE", "handle failed: CODE", then "response: STATUS BODY" or
"response failed: CODE" (CODE: the error-code's class and payload).
"""

from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, streams, types
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
)

PIECE = 4096


def describe(code: object) -> str:
    if code is None:
        return "none"
    return f"{type(code).__name__} {getattr(code, 'value', '')}".strip()


def write(stream: streams.OutputStream, size: int, index: int, lines: list[str]) -> bool:
    """Chunk ``index`` of ``size`` bytes; False (and a line saying why) when refused."""
    data = bytes([ord("a") + index % 26]) * size
    for at in range(0, size, PIECE):
        try:
            stream.blocking_write_and_flush(data[at : at + PIECE])
        except Err as e:
            error = e.value
            if isinstance(error, streams.StreamError_LastOperationFailed):
                lines.append(f"write failed: {describe(types.http_error_code(error.value))}")
            else:
                lines.append("write closed")
            return False
    return True


def send(request: OutgoingRequest, lines: list[str]):
    try:
        return outgoing_handler.handle(request, None)
    except Err as e:
        lines.append(f"handle failed: {describe(e.value)}")
        return None


def outcome(future, lines: list[str]) -> None:
    with future.subscribe() as pollable:
        pollable.block()
    result = future.get()
    if isinstance(result.value, Err):
        lines.append(f"response failed: {describe(result.value.value)}")
        return
    response = result.value.value
    data = b""
    with response.consume().stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err:
                break
    lines.append(f"response: {response.status()} {data.decode()}")


def fetch(params: dict[str, list[str]]) -> list[str]:
    lines: list[str] = []
    _, _, rest = params["to"][0].partition("://")
    authority, slash, path = rest.partition("/")
    nobody = bool(params.get("nobody"))
    early = bool(params.get("early"))
    chunks = [int(n) for n in params.get("write", [""])[0].split(",") if n]
    entries = [("content-length", value.encode()) for value in params.get("cl", [])]
    request = OutgoingRequest(Fields.from_list(entries))
    request.set_method(Method_Get() if nobody else Method_Post())
    request.set_scheme(Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    body = None
    if not nobody:
        try:
            body = request.body()
        except Err:
            lines.append("body refused")
    future = send(request, lines) if early or body is None else None
    if body is not None:
        with body.write() as stream:
            for index, size in enumerate(chunks):
                if not write(stream, size, index, lines):
                    break
        try:
            OutgoingBody.finish(body, None)
        except Err as e:
            lines.append(f"finish failed: {describe(e.value)}")
        else:
            lines.append("finish ok")
        if not early:
            future = send(request, lines)
    if future is not None:
        outcome(future, lines)
    return lines


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        _, _, query = (request.path_with_query() or "/").partition("?")
        lines = fetch(parse_qs(query))
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush("\n".join(lines).encode() + b"\n")
        OutgoingBody.finish(body, None)
