"""Implementation of the exported `thing` resource.

componentize-py looks up an exported interface's resource classes in a top-level
module named after the interface, hence this module's name.
"""

from wit_world.exports import echo


class Thing(echo.Thing):
    def __init__(self, n: int) -> None:
        self.n = n

    def value(self) -> int:
        return self.n
