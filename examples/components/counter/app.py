"""The counter component: increments a key in the "default" bucket per request.

Built with componentize-py against the `http-keyvalue` world. The key name comes
from the optional config key "counter_key" (default "counter").
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import atomics, logging
from wit_world.imports import wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as kv
from wit_world.imports.types import Request, Response

BUCKET = "default"
DEFAULT_KEY = "counter"


def _counter_key() -> str:
    # Config is optional: a missing key or a config error both fall back to the default.
    try:
        return config.get("counter_key") or DEFAULT_KEY
    except Err:
        return DEFAULT_KEY


def _error_name(error: kv.Error) -> str:
    if isinstance(error, kv.Error_Other):
        return f"other: {error.value}"
    if isinstance(error, kv.Error_AccessDenied):
        return "access-denied"
    return "no-such-store"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: Request) -> Response:
        key = _counter_key()
        try:
            # The bucket is a resource handle; `with` drops it before we return.
            with kv.open(BUCKET) as bucket:
                count = atomics.increment(bucket, key, 1)
        except Err as e:
            message = f"keyvalue error: {_error_name(e.value)}\n"
            logging.log(logging.Level.ERROR, "counter", message.strip())
            return Response(
                status=500, headers=[("content-type", "text/plain")], body=message.encode()
            )
        logging.log(logging.Level.INFO, "counter", f"{key} = {count}")
        body = json.dumps({"count": count}).encode()
        return Response(status=200, headers=[("content-type", "application/json")], body=body)
