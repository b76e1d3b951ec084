"""A standard wasi:http hello: the same component runs under `wasmtime serve`, Spin or wasmCloud.

Built with componentize-py against the `wasi:http/proxy` world (providers/wit/deps/wasi-http),
nothing project-specific in it. It prints the request line to stdout, which the host logs.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

_BODY = b"Hello from wasi:http!\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        print(f"wasi-hello: {request.path_with_query()}")
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(_BODY)
        OutgoingBody.finish(body, None)
