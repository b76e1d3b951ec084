"""The decisions behind guest calls tried on the event loop's thread (``host.runtime.inline``).

The calls themselves are tested with real components in ``test_wasi_http.py`` and
``test_runtime.py``; these are the pure rules: the gate's back-off, and what an
attempt holds or refuses.
"""

from __future__ import annotations

import threading

import pytest

from host.runtime.inline import Abandoned, Attempt, InlineGate, hold, refuse


def tried(gate: InlineGate, calls: int) -> int:
    return sum(gate.open() for _ in range(calls))


def test_a_closed_gate_never_opens() -> None:
    assert tried(InlineGate(False), 10) == 0


def test_each_given_up_attempt_sends_more_calls_to_workers() -> None:
    gate = InlineGate(True)
    assert tried(gate, 5) == 5
    gate.gave_up()
    assert tried(gate, 8) == 0 and gate.open()  # 8 skipped, then tried again
    gate.gave_up()
    assert tried(gate, 16) == 0 and gate.open()  # doubled
    for _ in range(20):
        gate.gave_up()
        tried(gate, InlineGate.MAX_PENALTY)
    gate.gave_up()
    assert tried(gate, InlineGate.MAX_PENALTY) == 0 and gate.open()  # capped
    assert gate.abandoned == 23


def test_attempts_that_stand_lower_the_penalty() -> None:
    gate = InlineGate(True)
    gate.gave_up()
    gate.gave_up()  # penalty 16
    gate.stood(0.0)
    gate.stood(0.0)  # 4
    tried(gate, 16)
    gate.gave_up()  # doubled from 4: 8
    assert tried(gate, 8) == 0 and gate.open()


def test_outside_an_attempt_nothing_is_held_or_refused() -> None:
    done: list[int] = []
    hold(done.append, 1)
    refuse("anything")
    assert done == [1]


def test_an_attempt_holds_effects_until_it_stands() -> None:
    done: list[int] = []
    with Attempt() as attempt:
        hold(done.append, 1)
        hold(done.append, 2)
    assert done == []
    attempt.run_held()
    assert done == [1, 2]
    attempt.run_held()  # once
    assert done == [1, 2]


def test_a_refusal_names_what_was_reached_and_closes_the_coroutine() -> None:
    async def io() -> None:
        raise AssertionError("never run")

    coro = io()
    with Attempt() as attempt, pytest.raises(Abandoned, match="a keyvalue call"):
        refuse("a keyvalue call", coro)
    assert attempt.refused == "a keyvalue call"
    assert coro.cr_frame is None  # closed, so no "never awaited" warning either
    refuse("after the attempt")  # the attempt is over: no effect


def test_attempts_belong_to_their_thread() -> None:
    refused: list[Abandoned] = []

    def elsewhere() -> None:
        try:
            refuse("from another thread")  # the attempt below is not this thread's
        except Abandoned as exc:
            refused.append(exc)

    with Attempt():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert refused == []


def test_a_slow_attempt_counts_as_given_up() -> None:
    gate = InlineGate(True)
    gate.stood(2 * InlineGate.SLOW_S)  # it stood, but held the loop too long
    assert gate.slow == 1 and gate.abandoned == 0
    assert tried(gate, 8) == 0 and gate.open()
