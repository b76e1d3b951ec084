"""``wasi:clocks``: the monotonic clock with its pollables, and the wall clock.

Instants and durations are nanoseconds of ``time.monotonic_ns()``; a pollable
on an instant is ready once it has passed (waiting on it ends at the call's
deadline like every wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from host.runtime.wasi.io import Pollable, Timer
from host.runtime.wasi.table import ResourceTable

__all__ = ["functions"]


@dataclass
class Datetime:
    """The ``datetime`` record (wasmtime-py lowers records by attribute name)."""

    seconds: int
    nanoseconds: int


def functions(table: ResourceTable) -> Mapping[str, Mapping[str, Callable[..., Any]]]:
    def at(instant_ns: int) -> Any:
        return table.own(Pollable(Timer(instant_ns / 1e9)))

    def wall_now(_s: Any) -> Datetime:
        now = time.time_ns()
        return Datetime(now // 1_000_000_000, now % 1_000_000_000)

    return {
        "wasi:clocks/monotonic-clock": {
            "now": lambda _s: time.monotonic_ns(),
            "resolution": lambda _s: 1,
            "subscribe-instant": lambda _s, when: at(when),
            "subscribe-duration": lambda _s, d: at(time.monotonic_ns() + d),
        },
        "wasi:clocks/wall-clock": {
            "now": wall_now,
            "resolution": lambda _s: Datetime(0, 1),
        },
    }
