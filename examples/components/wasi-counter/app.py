"""A wasi:http component that counts requests in a key-value bucket and fetches a URL.

Built with componentize-py against the `wasi-http-counter` world: `wasi:http/proxy`
plus wasi:keyvalue and wasi:config. Each request increments the key "wasi-counter"
in the "default" bucket; when the config key `fetch_url` is set, the component also
fetches it (through the host's http-client link, which must allow it) and reports
the status it got, or the error code when the host denied it.
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, outgoing_handler, streams
from wit_world.imports import wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as kv
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)

KEY = "wasi-counter"


def _fetch(url: str) -> dict:
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Https() if scheme == "https" else Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return {"error": type(e.value).__name__}
    with future.subscribe() as pollable:
        pollable.block()
    result = future.get()
    if isinstance(result.value, Err):
        return {"error": type(result.value.value).__name__}
    response = result.value.value
    body = response.consume()
    data = b""
    with body.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
    return {"status": response.status(), "body": data.decode(errors="replace")}


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        with kv.open("default") as bucket:
            count = atomics.increment(bucket, KEY, 1)
        result = {"count": count}
        try:
            url = config.get("fetch_url")
        except Err:
            url = None
        if url:
            result["fetched"] = _fetch(url)
        response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(json.dumps(result).encode())
        OutgoingBody.finish(body, None)
