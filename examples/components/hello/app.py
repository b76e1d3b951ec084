"""The hello component: answers every request with a fixed plain-text greeting.

Built with componentize-py against the `http-hello` world. It deliberately does
no logging per request: it is the benchmark baseline, and a host call per
request would dominate what we want to measure.
"""

from wit_world import exports
from wit_world.imports.types import Request, Response

_HEADERS = [("content-type", "text/plain")]
_BODY = b"Hello from wasmlattice!\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: Request) -> Response:
        return Response(status=200, headers=list(_HEADERS), body=_BODY)
