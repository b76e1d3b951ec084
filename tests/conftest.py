"""Shared fixtures: real nats-server processes, built components, a host runtime.

Everything a test starts it stops again, by process id. Tests fail when they
leave asyncio tasks behind.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from examples.build_components import build_all  # noqa: E402
from host.runtime.loader import LoadPolicy  # noqa: E402
from lattice.natsd import NatsServer  # noqa: E402

# Hosts the tests start with the `lattice` CLI serve HTTP from one process unless a
# test asks for more (tests/test_dataplane.py): the CLI's default is one per core.
os.environ.setdefault("WASMLATTICE_DATA_PLANE_PROCESSES", "1")


@pytest.fixture(scope="session")
def components() -> dict[str, Path]:
    """Every example component, built once per session (the build cache makes it cheap)."""
    return build_all(REPO / "build" / "components")


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the session, so each component compiles once.

    Created here: host processes get it as a symlink, which must not dangle.
    """
    path = REPO / "build" / "test-compile-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def artifact_policy(tmp_path_factory: pytest.TempPathFactory) -> LoadPolicy:
    """Components may be read from the built ones and from any of the session's tmp dirs."""
    return LoadPolicy.of([REPO / "build", tmp_path_factory.getbasetemp()])


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() - before if not t.done() and t is not current]
    if pending:
        # Tasks already told to stop (a closed subscription's reader finishing its
        # callback, say) get a few seconds; a task that runs on beyond that leaked.
        await asyncio.wait(pending, timeout=5.0)
    leaked = [t for t in pending if not t.done()]
    described = [_describe(t) for t in leaked]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test left tasks running: {described}"


def _describe(task: asyncio.Task[object]) -> str:
    """Name a leaked task and, for a NATS subscription's reader, its subject."""
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    subject = getattr(owner, "subject", None)
    where = f" reading {subject!r}" if subject else ""
    return f"{task.get_name()} ({getattr(coro, '__qualname__', coro)}{where})"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_loops: run the async test on asyncio's loop and on uvloop"
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio's loop for every test; ``both_loops`` tests also on uvloop, the loop
    wasmlattice's processes run on (``lattice.eventloop``)."""
    if item.get_closest_marker("both_loops") is not None:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
