"""The caller: each export calls the linked `work` interface."""

import time

from wit_world import exports
from wit_world.imports import work


def busy(ms: int) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        pass


class Run(exports.Run):
    def count(self) -> int:
        return work.count()

    def spin(self, ms: int) -> int:
        return work.spin(ms)

    def count_then_spin(self, ms: int) -> int:
        counted = work.count()
        busy(ms)
        return counted
