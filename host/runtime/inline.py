"""Guest calls tried on the event loop's own thread first, given up when they would stall it.

A guest call on a worker thread costs the host process a hand-off each way: the
loop wakes a worker, the worker takes the GIL from the loop, the loop is woken
with the result (measured: 4-5 context switches per request, most of a short
request's CPU). A short call run where the request already is costs none of that.

It must not cost isolation: a component that loops, sleeps or waits on I/O must
not stall the loop, which serves every other request of the process, for more
than one attempt's budget. So a call
on the loop's thread is an *attempt* that the host can give up at any point and
run again from the start on a worker, on another instance, with no one the
wiser. That holds because the attempt may do only what the host can take back:

- it runs under a short epoch budget (``ATTEMPT_TICKS``); running past it traps
  the guest (the instance is dropped, as after any failure);
- host calls that would wait (a pollable, a body not yet read) or reach outside
  (a keyvalue call, an outgoing request, a linked component, a response too long
  to hold) call ``refuse()`` first, which traps the guest;
- what it may do is read (the request, config, clocks, random) and produce what
  the host holds until the call returns: a wasi:http response held in memory,
  and log lines (``hold``), written only when the attempt stands;
- it may call a linked component on the same host, on an idle instance, as part
  of the attempt: under what is left of its budget, its refusals and log lines
  the attempt's own, and its instance put back only when the attempt stands
  (given up, the instance is dropped: its state saw a call that runs again).

A given-up attempt raises ``Abandoned``; the caller runs the call again on a worker.
A component whose attempts are given up gets fewer of them (``InlineGate``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["ATTEMPT_TICKS", "Abandoned", "Attempt", "InlineGate", "current", "hold", "refuse"]

# Epoch ticks an attempt may run (the engine ticks every 5 ms): 5 to 10 ms of the
# loop at worst, once; then the component's gate sends its calls to workers.
ATTEMPT_TICKS = 2


class Abandoned(Exception):
    """An attempt on the loop's thread was given up; run the call again on a worker."""


class Attempt:
    """One guest call on the loop's thread: what it was refused, and what it holds.

    ``ends``: the engine epoch at which its budget runs out (``WasmEngine.epoch``),
    which a linked call made inside it runs under too. ``dropped``: what to undo
    should it be given up (instances of linked components it used, whose state
    changed in a call that will run again).
    """

    __slots__ = ("dropped", "ends", "held", "refused")

    def __init__(self, ends: int = 0) -> None:
        self.refused: str | None = None
        self.ends = ends
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.dropped: list[Callable[[], None]] = []

    def __enter__(self) -> Attempt:
        _state.attempt = self
        return self

    def __exit__(self, *_exc: object) -> None:
        _state.attempt = None

    def run_held(self) -> None:
        """The attempt stands (it returned, or failed for good): do what it held back."""
        held, self.held = self.held, []
        self.dropped = []
        for func, args in held:
            func(*args)

    def give_up(self) -> None:
        """The attempt is given up: drop what it held, undo what it used."""
        dropped, self.dropped = self.dropped, []
        self.held = []
        for undo in dropped:
            undo()


class _State(threading.local):
    attempt: Attempt | None = None


_state = _State()


def refuse(what: str, coro: Coroutine[Any, Any, Any] | None = None) -> None:
    """Before a host call waits or reaches outside: an attempt stops here (a trap).

    ``coro``: the coroutine the host call was about to schedule, closed unrun.
    """
    attempt = _state.attempt
    if attempt is not None:
        attempt.refused = what
        if coro is not None:
            coro.close()
        raise Abandoned(f"a call on the event loop's thread reached {what}")


def current() -> Attempt | None:
    """The attempt running on this thread, if any."""
    return _state.attempt


def hold(func: Callable[..., Any], *args: Any) -> None:
    """``func(*args)`` now, or, during an attempt, once the attempt stands."""
    attempt = _state.attempt
    if attempt is None:
        func(*args)
    else:
        attempt.held.append((func, args))


class InlineGate:
    """Whether a component's next call is tried on the loop's thread.

    Each given-up attempt sends the next ``penalty`` calls straight to workers,
    the penalty doubling up to ``MAX_PENALTY`` (a component that always waits on
    I/O costs one wasted attempt per ~4,000 calls); each attempt that stands
    halves it. An attempt that stood but took over ``SLOW_S`` of CPU counts as given up:
    a component that computes for milliseconds per call would hold the loop (and
    lose the parallelism of workers, whose wasm runs without the GIL).
    """

    MAX_PENALTY = 4096
    SLOW_S = 0.001

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._skip = 0
        self._penalty = 0
        self.attempts = 0
        self.abandoned = 0  # given up (they ran again on a worker)
        self.slow = 0  # stood, over SLOW_S

    def open(self) -> bool:
        if not self.enabled:
            return False
        if self._skip:
            self._skip -= 1
            return False
        return True

    def stood(self, seconds: float) -> None:
        if seconds > self.SLOW_S:
            self.slow += 1
            self._penalize()
            return
        self.attempts += 1
        self._penalty //= 2

    def gave_up(self) -> None:
        self.abandoned += 1
        self._penalize()

    def _penalize(self) -> None:
        self.attempts += 1
        self._penalty = min(max(2 * self._penalty, 8), self.MAX_PENALTY)
        self._skip = self._penalty
