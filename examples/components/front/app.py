"""The front component: answers HTTP by calling a greeter through a link.

GET /?name=Ada&times=2&style=shout&tag=a&tag=b&signature=x answers with the
greeting and which host served it. The greeter may run in this host or any
other: the link decides, the code does not change.
"""

import json
from urllib.parse import parse_qs

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import greeter
from wit_world.imports.types import Request, Response

_JSON = [("content-type", "application/json")]


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: Request) -> Response:
        query = parse_qs(request.query, keep_blank_values=True)
        style = greeter.Style.SHOUT if query.get("style") == ["shout"] else greeter.Style.PLAIN
        greeting = greeter.Greeting(
            name=query.get("name", ["world"])[0],
            times=int(query.get("times", ["1"])[0]) % 256,
            style=style,
            tags=query.get("tag", []),
            signature=query.get("signature", [None])[0],
        )
        try:
            reply = greeter.greet(greeting)
        except Err as e:
            body = json.dumps({"error": e.value}).encode()
            return Response(status=400, headers=list(_JSON), body=body)
        body = json.dumps(
            {"text": reply.text, "served_by": reply.served_by, "length": reply.length}
        ).encode()
        return Response(status=200, headers=list(_JSON), body=body)
