"""The linked component: a count in its memory, and a busy loop."""

import time

from wit_world import exports

_count = 0


def busy(ms: int) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        pass


class Work(exports.Work):
    def count(self) -> int:
        global _count
        _count += 1
        print(f"callee count {_count}")
        return _count

    def spin(self, ms: int) -> int:
        busy(ms)
        return ms
