"""A wasi:http component that declares a Content-Length and writes what it is told,
for tests/test_wasi_content_length.py. It prints what each call gave it (the test
reads its stdout), since a broken response cannot carry that to the client.

Query parameters:
    cl=V       a content-length value (repeat it for several)
    write=A,B  the body's chunks, in bytes (each written 4096 bytes at a time;
               chunk i is made of the letter ``"abc..."[i]``)
    pause=MS   blocks this long on a clock pollable before each chunk after the
               first and before finishing (the host sends what it held meanwhile)
    nobody=1   the response is set without taking its body

It prints "body refused", "write failed: CODE", "write closed", then
"finish ok" or "finish failed: CODE" (CODE: the error-code's class and payload).
"""

from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import monotonic_clock, streams, types
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

PIECE = 4096


def describe(code: object) -> str:
    if code is None:
        return "none"
    return f"{type(code).__name__} {getattr(code, 'value', '')}".strip()


def pause(ms: int) -> None:
    if ms:
        with monotonic_clock.subscribe_duration(ms * 1_000_000) as pollable:
            pollable.block()


def write(stream: streams.OutputStream, size: int, index: int) -> bool:
    """Chunk ``index`` of ``size`` bytes; False (and printed why) when the stream refused it."""
    data = bytes([ord("a") + index % 26]) * size
    for at in range(0, size, PIECE):
        try:
            stream.blocking_write_and_flush(data[at : at + PIECE])
        except Err as e:
            error = e.value
            if isinstance(error, streams.StreamError_LastOperationFailed):
                print(f"write failed: {describe(types.http_error_code(error.value))}")
            else:
                print("write closed")
            return False
    return True


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        _, _, query = (request.path_with_query() or "/").partition("?")
        params = parse_qs(query)
        chunks = [int(n) for n in params.get("write", [""])[0].split(",") if n]
        wait = int(params.get("pause", ["0"])[0])
        entries = [("content-type", b"application/octet-stream")]
        entries += [("content-length", value.encode()) for value in params.get("cl", [])]
        response = OutgoingResponse(Fields.from_list(entries))
        if params.get("nobody"):
            ResponseOutparam.set(response_out, Ok(response))
            return
        try:
            body = response.body()
        except Err:
            print("body refused")
            ResponseOutparam.set(response_out, Ok(response))
            return
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            for index, size in enumerate(chunks):
                if index:
                    pause(wait)
                if not write(stream, size, index):
                    break
        pause(wait)
        try:
            OutgoingBody.finish(body, None)
        except Err as e:
            print(f"finish failed: {describe(e.value)}")
        else:
            print("finish ok")
