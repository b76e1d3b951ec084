"""A linked call to a component on the same host, made inside an attempt on the
event loop's thread (``host.runtime.inline``): part of the attempt, never more.

The guests are tests/chain_component: a caller whose exports call the linked
``work`` interface of a callee, which keeps a count in its instance's memory.
The callee has one instance (max_concurrency 1), so the count it returns tells
which calls its instance saw.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.loader import LoadPolicy
from host.runtime.pool import Limits
from tests.guests import build_guest
from tests.loop_watch import watching_the_loop
from tests.test_observability import points  # also sets up the in-memory metrics

RUN = "chaintest:probe/run@0.1.0"
WORK = "chaintest:probe/work"


@pytest.fixture(scope="session")
def chain_guests() -> tuple[Path, Path]:
    callee = build_guest("chain", "chaintest:probe/callee@0.1.0", app="callee")
    caller = build_guest("chain", "chaintest:probe/caller@0.1.0", app="caller")
    return caller, callee


@pytest.fixture
async def runtime(
    compile_cache: Path, chain_guests: tuple[Path, Path]
) -> AsyncIterator[HostRuntime]:
    caller, callee = chain_guests
    rt = HostRuntime(compile_cache, load_policy=LoadPolicy.of([caller.parent, callee.parent]))
    await rt.start(
        ComponentSpec("callee", str(callee), limits=Limits(max_concurrency=1, deadline_s=5.0))
    )
    await rt.start(
        ComponentSpec(
            "caller",
            str(caller),
            limits=Limits(deadline_s=5.0),
            component_links=((WORK, "callee"),),
        )
    )
    yield rt
    await rt.close()


async def warmed(runtime: HostRuntime, caller: str = "caller") -> int:
    """Calls ``count`` until one stands on the loop's thread: a component's first calls
    are slow (converters built on first use) and put its gate on penalty. Returns the
    last count."""
    gate = runtime.get(caller).pool.inline
    for _ in range(50):
        stood = gate.attempts - gate.abandoned - gate.slow
        counted: int = await runtime.call(caller, RUN, "count")
        if gate.attempts - gate.abandoned - gate.slow > stood:
            return counted
    raise AssertionError(f"no call of {caller} stood on the event loop's thread")


def callee_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "callee count" in r.getMessage()]


async def test_a_linked_call_runs_inside_the_attempt_and_logs_once(
    runtime: HostRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    gate = runtime.get("caller").pool.inline
    counts = [await runtime.call("caller", RUN, "count") for _ in range(10)]
    assert counts == list(range(1, 11))  # one instance, one count per call
    # Calls stood on the loop's thread (a busy machine may give one up: then it
    # ran again on a worker, which the counts above would show if doubled).
    assert gate.attempts - gate.abandoned - gate.slow >= 1
    assert len(callee_lines(caplog)) == 10


async def test_a_given_up_attempt_drops_the_callee_instance_it_used(
    runtime: HostRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """The callee counted inside an attempt that then ran out of its budget (the
    caller's own loop): that instance saw a call that runs again, so it is dropped,
    and the rerun on a worker counts on a new one."""
    gate = runtime.get("caller").pool.inline
    counted = await warmed(runtime)
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    abandoned = gate.abandoned
    assert await runtime.call("caller", RUN, "count-then-spin", 100) == 1  # a new instance
    assert gate.abandoned == abandoned + 1
    assert await runtime.call("caller", RUN, "count") == 2
    # The count made in the given-up attempt (counted + 1) was not logged.
    assert counted >= 1
    assert callee_lines(caplog) == [
        "[callee] stdout: callee count 1",
        "[callee] stdout: callee count 2",
    ]


def _counted(metric: str, component: str) -> int:
    found = points(f"wasmlattice.component.{metric}", component)
    return sum(p.value for p in found)  # type: ignore[attr-defined]


async def test_a_linked_call_in_a_given_up_attempt_is_recorded_once(runtime: HostRuntime) -> None:
    """The callee's call made inside the given-up attempt ran again on a worker: the
    metrics count the call that stood, not both."""
    await warmed(runtime)
    before = _counted("invocations", "callee"), _counted("errors", "callee")
    gate = runtime.get("caller").pool.inline
    abandoned = gate.abandoned
    await runtime.call("caller", RUN, "count-then-spin", 100)
    assert gate.abandoned == abandoned + 1
    assert (_counted("invocations", "callee"), _counted("errors", "callee")) == (
        before[0] + 1,
        before[1],
    )
    await runtime.call("caller", RUN, "count")  # stands on the loop's thread, or a worker
    assert _counted("invocations", "callee") == before[0] + 2


async def test_a_looping_callee_holds_the_event_loop_for_one_attempt_at_most(
    runtime: HostRuntime,
) -> None:
    """The callee runs under what is left of the caller's budget, not its own
    5 s deadline: the attempt is given up and the call runs again on a worker."""
    await warmed(runtime)
    abandoned = runtime.get("caller").pool.inline.abandoned
    async with watching_the_loop() as watch:
        assert await runtime.call("caller", RUN, "spin", 800) == 800
    assert runtime.get("caller").pool.inline.abandoned == abandoned + 1
    assert watch.longest < 0.4, f"the event loop was held {watch.longest:.3f} s"


async def test_with_no_idle_callee_instance_the_call_runs_on_a_worker(
    runtime: HostRuntime, chain_guests: tuple[Path, Path]
) -> None:
    """Making an instance runs guest start code under the full deadline: never on the
    loop's thread. A call that finds no idle callee instance runs on a worker."""
    caller, callee = chain_guests
    await runtime.start(ComponentSpec("cold", str(callee), replicas=0))
    await runtime.start(
        ComponentSpec("caller-of-cold", str(caller), component_links=((WORK, "cold"),))
    )
    await warmed(runtime, "caller")  # the callers share the compiled code's first use
    cold = runtime.get("cold").pool
    gate = runtime.get("caller-of-cold").pool.inline
    assert cold.idle_instances == 0
    abandoned = gate.abandoned
    assert await runtime.call("caller-of-cold", RUN, "count") == 1
    assert cold.idle_instances == 1  # made on a worker, and kept
    assert gate.abandoned == abandoned + 1  # tried on the loop's thread first, given up
