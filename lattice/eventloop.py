"""The event loop every wasmlattice process runs on: uvloop where it is installed.

uvloop (libuv) runs the same asyncio programs with less CPU per event: measured on
a loaded 2-core host, plain aiohttp served hello at ~27 instead of ~32 µs of CPU per
request, and a host's own-contract HTTP path ~10 % cheaper. Its thread-safe
wake-ups are cheaper too, which the worker threads' results use. Where uvloop is
missing (it does not build on Windows), the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["loop_factory", "run"]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the process's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
