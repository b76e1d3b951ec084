"""The greeter component: exports wasmlattice:demo/greeter.

It reads the config key "served_by" (set by its spec or link) so callers can see
which replica answered. An empty name is an error result, not a trap.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.greeter import Greeting, Reply, Style
from wit_world.imports import store as config


class Greeter(exports.Greeter):
    def greet(self, request: Greeting) -> Reply:
        # componentize-py: the ok value is returned, the err value raised as Err.
        if not request.name:
            raise Err("name must not be empty")
        text = f"Hello, {request.name}!"
        if request.style == Style.SHOUT:
            text = text.upper()
        text = " ".join([text] * max(1, request.times))
        if request.tags:
            text += " [" + ", ".join(request.tags) + "]"
        if request.signature is not None:
            text += f" -- {request.signature}"
        try:
            served_by = config.get("served_by") or "unknown"
        except Err:
            served_by = "unknown"
        return Reply(text=text, served_by=served_by, length=len(text))
