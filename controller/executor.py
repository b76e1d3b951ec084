"""The only code that sends the controller's commands.

In-flight scale commands are remembered as ``Pending`` (fed back into
``reconcile()``, so they are not re-issued) until a heartbeat confirms them or they
expire. A failed command backs off exponentially before it may be sent again.
Commands run as named background tasks, so a slow start (a first compile takes
seconds) never holds up the reconcile loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from catalog import annotations as annotation
from controller.commands import (
    Command,
    DeleteLinkCommand,
    ProviderCommand,
    PutLinkCommand,
    ScaleCommand,
)
from controller.model import MANAGED_BY, Observed, Pending
from lattice.client import LatticeClient
from lattice.errors import LatticeError, RemoteError
from lattice.messages import Link, ScaleComponent, StartProvider

log = logging.getLogger(__name__)

Key = tuple[str, str, str]
# Seals the secrets a scale command asks for to its host's key (``lattice.secrets``).
Sealer = Callable[[ScaleCommand], Awaitable[Mapping[str, str]]]


@dataclass
class Backoff:
    until: float
    attempts: int
    error: str


class Executor:
    def __init__(
        self,
        client: LatticeClient,
        *,
        command_timeout_s: float = 60.0,
        confirm_window_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        sealer: Sealer | None = None,
    ) -> None:
        self.client = client
        self.sealer = sealer
        self.command_timeout_s = command_timeout_s
        self.confirm_window_s = confirm_window_s
        self.clock = clock
        self.pending: dict[Key, Pending] = {}
        self.backoff: dict[Key, Backoff] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._links_in_flight: set[Key] = set()

    def dispatch(self, commands: Sequence[Command]) -> list[Command]:
        """Start every command not already running or backing off; returns those started."""
        now = self.clock()
        started: list[Command] = []
        for command in commands:
            key = command.key
            held = self.backoff.get(key)
            if held is not None and held.until > now:
                continue
            if key in self._links_in_flight:
                continue
            tracked = _tracked(command)
            if tracked is not None:
                self.pending[key] = Pending(*tracked, now + self.command_timeout_s)
            else:
                self._links_in_flight.add(key)
            task = asyncio.create_task(self._run(command), name=f"command-{'-'.join(key)}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(command)
        return started

    async def _run(self, command: Command) -> None:
        key = command.key
        try:
            await self._send(command)
        except (LatticeError, ValueError) as exc:
            attempts = self.backoff[key].attempts + 1 if key in self.backoff else 1
            delay = min(30.0, 0.5 * 2 ** (attempts - 1))
            self.backoff[key] = Backoff(self.clock() + delay, attempts, str(exc))
            self.pending.pop(key, None)
            log.warning("%s failed (attempt %d, retry in %.1f s): %s", key, attempts, delay, exc)
        else:
            self.backoff.pop(key, None)
            tracked = _tracked(command)
            if tracked is not None:
                # Done on the host; keep it pending until a heartbeat shows it.
                self.pending[key] = Pending(*tracked, self.clock() + self.confirm_window_s)
        finally:
            self._links_in_flight.discard(key)

    async def _send(self, command: Command) -> None:
        if isinstance(command, ScaleCommand):
            if command.count == 0:
                await _unless_gone(
                    self.client.stop_component(command.host_id, command.component_id)
                )
                return
            sealed: Mapping[str, str] = {}
            if command.secrets:
                if self.sealer is None:
                    raise ValueError(
                        "the component asks for secrets and this controller has no secrets "
                        "key (lattice up makes one; lattice controller --secrets-key FILE)"
                    )
                sealed = await self.sealer(command)
            request = to_request(command, sealed)
            await self.client.scale(command.host_id, request, self.command_timeout_s)
        elif isinstance(command, PutLinkCommand):
            await self.client.put_link(to_link(command))
        elif isinstance(command, DeleteLinkCommand):
            await self.client.state.delete_link(command.link_key)
        elif isinstance(command, ProviderCommand):
            if command.run:
                await self.client.start_provider(
                    command.host_id, to_start_provider(command), self.command_timeout_s
                )
            else:
                await _unless_gone(self.client.stop_provider(command.host_id, command.provider_id))

    def confirm(self, observed: Observed) -> None:
        """Drop pending entries that heartbeats now show, and expired ones."""
        now = self.clock()
        for key, pending in list(self.pending.items()):
            kind, host_id, ident = key
            host = observed.hosts.get(host_id)
            count, revision = 0, ""
            if host is not None and kind == "scale" and ident in host.components:
                count, revision = host.components[ident].count, host.components[ident].revision
            elif host is not None and kind == "provider" and ident in host.providers:
                count, revision = 1, host.providers[ident].revision
            shown = count == pending.count and (pending.count == 0 or revision == pending.revision)
            if shown or pending.expires_at <= now:
                del self.pending[key]

    def errors(self) -> dict[Key, str]:
        return {key: b.error for key, b in self.backoff.items()}

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let running commands finish (up to the timeout), then cancel the rest."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:  # bounded: a task that missed its cancellation is left to finish
                await asyncio.wait(late, timeout=timeout_s)


def to_request(command: ScaleCommand, sealed: Mapping[str, str] | None = None) -> ScaleComponent:
    return ScaleComponent(
        component_id=command.component_id,
        source=command.source,
        sha256=command.sha256,
        count=command.count,
        max_concurrency=command.max_concurrency,
        config=dict(command.config),
        config_names=list(command.config_names),
        secrets=dict(sealed or {}),
        annotations={
            **_managed(command.app, command.revision),
            annotation.VERSION: command.version,
        },
    )


def _managed(app: str, revision: str) -> dict[str, str]:
    """Annotations of what the controller runs: hosts report them back in heartbeats."""
    return {annotation.APP: app, annotation.REVISION: revision, annotation.MANAGED_BY: MANAGED_BY}


async def _unless_gone(stop: Awaitable[object]) -> None:
    """A stop whose target is already gone has done its job."""
    try:
        await stop
    except RemoteError as exc:
        if exc.code != "not_found":
            raise


def _tracked(command: Command) -> tuple[int, str] | None:
    """(count, revision) a command should bring about on its host; None for links."""
    if isinstance(command, ScaleCommand):
        return command.count, command.revision
    if isinstance(command, ProviderCommand):
        return int(command.run), command.revision
    return None


def to_start_provider(command: ProviderCommand) -> StartProvider:
    return StartProvider(
        provider_id=command.provider_id,
        kind=command.kind,
        config=dict(command.config),
        annotations=_managed(command.app, command.revision),
    )


def to_link(command: PutLinkCommand) -> Link:
    return Link(
        source_id=command.source_id,
        target=command.target,
        namespace=command.namespace,
        package=command.package,
        interfaces=list(command.interfaces),
        name=command.name,
        config=dict(command.config),
        annotations={annotation.APP: command.app, annotation.MANAGED_BY: MANAGED_BY},
    )
