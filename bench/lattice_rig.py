"""A real lattice for the bench, all local: nats-server, ``lattice host`` processes, a client.

The control, controller and distributed sections each run one, as an operator would: a
nats-server (JetStream) in a temp dir and each host daemon as its own process, started by the
``lattice`` console script and stopped by pid. The bench process connects as a client.

Every host shares the bench's compile cache, already filled by ``prepare_components``, so a
start deserialises instead of compiling: the warm case the sections' aims are about.
Logs go to ``build/bench-logs/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.context import CACHE_DIR, LOG_DIR
from bench.procs import BenchProcessError, Server, log_tail
from lattice.process import spawn

if TYPE_CHECKING:
    from nats.aio.client import Client

    from lattice.natsd import NatsServer


@contextlib.contextmanager
def nats_server(tmp: Path, name: str) -> Iterator[NatsServer]:
    """A nats-server with JetStream in ``tmp/nats``, stopped on the way out."""
    # Imported here so that listing sections does not load the lattice packages.
    from lattice.natsd import NatsServer

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    server = NatsServer(tmp / "nats", log_file=LOG_DIR / f"{name}-nats.log").start()
    try:
        yield server
    finally:
        server.stop()


def start_host(
    nats_url: str, state_dir: Path, host_id: str, log_name: str, *options: str
) -> Server:
    """``lattice host`` as its own process; ``options`` are extra command-line options.

    The caller stops it (``bench.procs.stop``, or a SIGKILL by pid) in a ``finally``.
    """
    from lattice.natsd import free_port

    state_dir.mkdir(parents=True)
    (state_dir / "compile-cache").symlink_to(CACHE_DIR, target_is_directory=True)
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    # One process per host unless ``options`` say otherwise (the last one given wins):
    # these sections measure the control plane, not the data plane's spread over cores.
    args = ["host", "--nats-url", nats_url, "--http-port", str(port),
            "--state-dir", str(state_dir), "--host-id", host_id,
            "--data-plane-processes", "1", *options]  # fmt: skip
    # No tracing or metrics exporter, whatever this shell sets: a host's default.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMLATTICE_")}
    # Own session: a Ctrl-C reaches only the bench, which then stops the host by pid.
    lattice_cli = str(Path(sys.executable).parent / "lattice")
    process = spawn([lattice_cli, *args], log=log_path, append=False, own_group=True, env=env)
    return Server(host_id, process, log_path, port)


async def wait_joined(
    hosts: Sequence[Server], joined: Callable[[], Awaitable[bool]], timeout_s: float = 60.0,
    poll_s: float = 0.1,
) -> None:  # fmt: skip
    """Poll ``joined()`` until it is true; fail at once, with its log, if a host exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for server in hosts:
            if server.process.poll() is not None:
                raise BenchProcessError(f"host {server.name} exited:\n{log_tail(server.log_path)}")
        if await joined():
            return
        await asyncio.sleep(poll_s)
    logs = "\n".join(f"{server.name}:\n{log_tail(server.log_path)}" for server in hosts)
    names = ", ".join(server.name for server in hosts)
    raise BenchProcessError(f"{names} did not join within {timeout_s:g} s:\n{logs}")


@contextlib.asynccontextmanager
async def connected(nats_url: str, name: str) -> AsyncIterator[Client]:
    """The bench's own NATS connection, closed on the way out."""
    from lattice.connection import NatsOptions, connect

    # No reconnect: closing at the end is then not reported as a lost connection.
    nc = await connect(NatsOptions(nats_url, name=name), reconnect=False)
    try:
        yield nc
    finally:
        await nc.close()
