"""The daemon's side of the data plane: its members, kept in step and kept alive.

``DataPlaneGroup.start(settings, count)`` spawns ``count`` members
(``host.dataplane.member``) and waits until each is ready to serve. Then:

- ``start_component`` / ``stop_component`` / ``set_routes`` go to every
  member (concurrently) and are remembered, so a member started later gets
  the same: every component that runs, then the route table, then ``serve``;
- ``take`` is the daemon's ``HttpServer.hand_off``: a connection the daemon
  accepted goes to the ready member with the fewest open connections, if it
  has fewer than the daemon (``host.dataplane.connections``);
- each member has a named task that asks for its stats every
  ``STATS_INTERVAL_S`` (the inventory adds them up; the answer is the health
  check) and notices its exit within ``EXIT_POLL_S``; a member that exited,
  lost its channel or did not answer in ``STATS_TIMEOUT_S`` is killed and
  started again after a backoff doubling from ``BACKOFF_INITIAL_S`` to
  ``BACKOFF_MAX_S``;
- a member that exited does not leave its clients hanging or cut: the daemon
  holds a copy of each of the member's connections (``host.dataplane.connections``)
  and, once the member is gone, answers every request it was serving with
  ``503`` (``Connection: close``), closes its other connections and serves
  those it had not started on itself (``serve_here``), then starts it again
  (the lingering for those clients overlaps the backoff);
- ``close()`` asks each member to shut down (it takes no more connections and drains),
  then stops it by pid (SIGTERM, then SIGKILL: ``lattice.process``); idempotent.

A member that is restarting misses nothing: a change made meanwhile is in
what it is given when it comes back. A member whose start of a component fails
makes the whole start fail (``MemberError``), as a daemon's own would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from host.dataplane.channel import Channel, ChannelClosed, MemberError
from host.dataplane.connections import Adopt, HeldConnections, raise_fd_limit
from host.dataplane.settings import (
    PlaneSettings,
    routes_to_wire,
    settings_to_wire,
    spec_to_wire,
)
from host.runtime.components import ComponentSpec
from host.supervisor import PROJECT_ROOT
from lattice.process import kill_process, spawn, stop_process_async, wait_exit
from providers.http_server import Route

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 0.5
STATS_TIMEOUT_S = 10.0
# Python start-up, NATS connect: a loaded machine can take seconds.
CONFIGURE_TIMEOUT_S = 60.0
# A start may compile (seconds for an 18 MB component on a cold cache) or fetch.
START_TIMEOUT_S = 300.0
CHANGE_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0
EXIT_POLL_S = 0.05
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 10.0
STABLE_S = 10.0

# The member's code is the host's own, run like a provider's (host.supervisor):
# isolated mode, the project's root put first on sys.path explicitly.
BOOTSTRAP = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('host.dataplane.member', run_name='__main__', alter_sys=True)"
)

# (calls, failures, calls in flight) of one component in one member.
Stats = tuple[int, int, int]


def member_command(fd: int, index: int, connections_fd: int, states_fd: int) -> list[str]:
    return [sys.executable, "-I", "-c", BOOTSTRAP, str(PROJECT_ROOT),
            "--fd", str(fd), "--parent-pid", str(os.getpid()), "--index", str(index),
            "--connections-fd", str(connections_fd), "--states-fd", str(states_fd)]  # fmt: skip


@dataclass
class _Member:
    index: int
    process: subprocess.Popen[bytes] | None = None
    channel: Channel | None = None
    # The daemon's copies of the process's connections, answered when it exits.
    connections: HeldConnections | None = None
    # Serving with every component and route: broadcasts and connections go to it.
    ready: bool = False
    restarts: int = 0
    started_at: float = 0.0
    stats: dict[str, Stats] = field(default_factory=dict)
    # Held by whatever talks to the member: its bring-up, a broadcast, a stats poll.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class DataPlaneGroup:
    """A host's data-plane members; ``await DataPlaneGroup.start(...)`` builds a running one."""

    def __init__(
        self, settings: PlaneSettings, count: int, serve_here: Adopt | None = None
    ) -> None:
        self.settings = settings
        # Serves, in the daemon, a dead member's connections that it had not started on.
        self._serve_here = serve_here
        self._members = [_Member(index) for index in range(1, count + 1)]
        # What every member must run: component id -> (spec, remote provider ids); routes.
        self._components: dict[str, tuple[ComponentSpec, tuple[str, ...]]] = {}
        self._routes: list[Route] = []
        self._closed = False

    @classmethod
    async def start(
        cls, settings: PlaneSettings, count: int, serve_here: Adopt | None = None
    ) -> DataPlaneGroup:
        """Spawn ``count`` members (0: none) and wait until each is ready to serve."""
        group = cls(settings, count, serve_here)
        # The daemon holds a copy of every member connection besides its own.
        raise_fd_limit(256 + (count + 1) * settings.http_limits.max_connections)
        try:
            await asyncio.gather(*(group._bring_up(m) for m in group._members))
        except BaseException:
            await group.close()
            raise
        for member in group._members:
            member.task = asyncio.create_task(
                group._supervise(member), name=f"data-plane-{member.index}"
            )
        return group

    @property
    def pids(self) -> list[int | None]:
        """Each member's current pid (None while it is being restarted)."""
        return [m.pid for m in self._members]

    @property
    def ready(self) -> bool:
        """Every member serves with every component and route."""
        return all(m.ready for m in self._members)

    @property
    def restarts(self) -> int:
        return sum(m.restarts for m in self._members)

    def stats(self, component_id: str) -> Stats:
        """Calls, failures and calls in flight of a component over all members."""
        found = [m.stats.get(component_id, (0, 0, 0)) for m in self._members]
        return (sum(s[0] for s in found), sum(s[1] for s in found), sum(s[2] for s in found))

    def take(self, conn: socket.socket, load: int) -> bool:
        """Give ``conn`` to the ready member with the fewest open connections, if that
        is fewer than ``load`` (the daemon's own); False leaves it to the daemon."""
        best: HeldConnections | None = None
        for member in self._members:
            held = member.connections
            if member.ready and held is not None and (best is None or held.held < best.held):
                best = held
        return best is not None and best.held < load and best.give(conn)

    @property
    def connections(self) -> list[int]:
        """Each member's open connections."""
        return [m.connections.held if m.connections is not None else 0 for m in self._members]

    # -- what every member runs ----------------------------------------------------------

    async def start_component(self, spec: ComponentSpec, remote_providers: Sequence[str]) -> None:
        self._components[spec.component_id] = (spec, tuple(remote_providers))
        await self._broadcast("start", START_TIMEOUT_S, **_start_fields(spec, remote_providers))

    async def stop_component(self, component_id: str) -> None:
        self._components.pop(component_id, None)
        await self._broadcast("stop", CHANGE_TIMEOUT_S, component_id=component_id)

    async def set_routes(self, routes: Sequence[Route]) -> None:
        """The host's whole route table (each member swaps it in at once)."""
        self._routes = list(routes)
        await self._broadcast("routes", CHANGE_TIMEOUT_S, routes=routes_to_wire(self._routes))

    async def _broadcast(self, op: str, timeout_s: float, **fields: Any) -> None:
        """``op`` on every ready member; MemberError if one refused it.

        A member that is not ready, or is lost meanwhile, gets the change when it
        is brought up again (from ``_components`` and ``_routes``, set before this).
        """

        async def one(member: _Member) -> str | None:
            async with member.lock:
                if not member.ready or member.channel is None:
                    return None
                try:
                    await member.channel.request(op, timeout_s, **fields)
                except MemberError as exc:
                    return f"data-plane process {member.index} (pid {member.pid}): {exc}"
                except (ChannelClosed, TimeoutError):
                    member.ready = False  # its supervising task restarts it
                return None

        errors = [e for e in await asyncio.gather(*(one(m) for m in self._members)) if e]
        if errors:
            raise MemberError("; ".join(errors))

    # -- processes -----------------------------------------------------------------------

    async def _bring_up(self, member: _Member) -> None:
        """Spawn, configure, give it every component and route, then let it serve."""
        async with member.lock:
            ours, theirs = socket.socketpair()
            member.connections = held = HeldConnections.create(
                self.settings.http_limits.max_connections
            )
            try:
                member.process = spawn(
                    member_command(theirs.fileno(), member.index, *held.member_fds),
                    own_group=True,  # Ctrl-C reaches the daemon, which stops members in order
                    pass_fds=[theirs.fileno(), *held.member_fds],
                )
            finally:
                theirs.close()
                held.close_member_fds()
            member.started_at = time.monotonic()
            member.channel = channel = await Channel.open(ours)
            settings = settings_to_wire(self.settings)
            async with asyncio.timeout(CONFIGURE_TIMEOUT_S):
                await channel.send({"op": "configure", "settings": settings})
                await channel.receive()
            for spec, remote in list(self._components.values()):
                await channel.request("start", START_TIMEOUT_S, **_start_fields(spec, remote))
            await channel.request("routes", CHANGE_TIMEOUT_S, routes=routes_to_wire(self._routes))
            await channel.request("serve", CHANGE_TIMEOUT_S)
            member.ready = True
        log.info("data-plane process %s serving as pid %s", member.index, member.pid)

    async def _supervise(self, member: _Member) -> None:
        delay = BACKOFF_INITIAL_S
        while not self._closed:
            reason = await self._watch(member)
            if self._closed:
                return
            log.warning("data-plane process %s (pid %s) %s", member.index, member.pid, reason)
            member.ready = False
            member.stats = {}
            self._discard(member)
            if time.monotonic() - member.started_at >= STABLE_S:
                delay = BACKOFF_INITIAL_S
            await asyncio.gather(self._answer_orphans(member), asyncio.sleep(delay))
            delay = min(delay * 2, BACKOFF_MAX_S)
            member.restarts += 1
            try:
                await self._bring_up(member)
            except Exception as exc:
                log.warning("restarting data-plane process %s failed: %s", member.index, exc)

    async def _watch(self, member: _Member) -> str:
        """Return once the member exited, lost its channel or stopped answering."""
        while not self._closed:
            process, channel = member.process, member.channel
            if process is None or channel is None:
                return "could not be started"
            code = process.poll()
            if code is not None:
                return f"exited with code {code}"
            if not member.ready:
                return "lost its channel"
            try:
                async with member.lock:
                    answer = await channel.request("stats", STATS_TIMEOUT_S)
            except (ChannelClosed, MemberError) as exc:
                return f"failed: {exc}"
            except TimeoutError:
                return f"did not answer within {STATS_TIMEOUT_S:g} s"
            member.stats = {cid: (s[0], s[1], s[2]) for cid, s in answer.items()}
            await wait_exit(process, STATS_INTERVAL_S, EXIT_POLL_S)
        return "closed"

    def _discard(self, member: _Member) -> None:
        if member.channel is not None:
            member.channel.close()
            member.channel = None
        if member.process is not None:
            kill_process(member.process)

    async def _answer_orphans(self, member: _Member) -> None:
        """The exited member's requests answered 503, its other connections closed,
        those it had not started on served here."""
        held, member.connections = member.connections, None
        if held is None:
            return
        ended = await held.end(self._serve_here)
        if any(ended):
            log.warning(
                "data-plane process %s: %s request(s) it was serving answered 503, "
                "%s other connection(s) closed, %s not yet started on served here",
                member.index, ended.answered, ended.closed, ended.served_here,
            )  # fmt: skip

    async def close(self) -> None:
        """Stop every member: take no more connections, drain, exit; idempotent."""
        self._closed = True
        tasks = [m.task for m in self._members if m.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await asyncio.gather(*(self._stop(m) for m in self._members))

    async def _stop(self, member: _Member) -> None:
        member.ready = False
        if member.channel is not None:
            with contextlib.suppress(ChannelClosed, MemberError, TimeoutError):
                await member.channel.request("shutdown", CHANGE_TIMEOUT_S)
            member.channel.close()
            member.channel = None
        if member.process is not None and not await stop_process_async(
            member.process, SHUTDOWN_TIMEOUT_S
        ):
            log.warning("data-plane process %s ignored SIGTERM: it was killed", member.index)
        await self._answer_orphans(member)  # none left after a drain, unless it was killed


def _start_fields(spec: ComponentSpec, remote_providers: Sequence[str]) -> dict[str, Any]:
    return {"spec": spec_to_wire(spec), "remote_providers": list(remote_providers)}
