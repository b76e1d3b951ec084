"""Out-of-process providers owned by this host: start, watch, restart, stop.

A provider such as ``keyvalue-redis`` runs as its own process
(``python -m providers.run``) and serves the whole lattice over NATS, so a
component on any host reaches it by linking with ``provider=<id>``. The host that
was asked to run it (``provider.start``) only owns the process:

- it spawns ``providers.run KIND`` under ``sys.executable`` in isolated mode
  (``provider_command``: no PYTHONPATH, no user site, no current directory on its
  import path) with the host's NATS URL and lattice name, secrets and config in
  the environment (never on the command line), output appended to
  ``<state-dir>/providers/<id>.log``, and waits for the first healthy answer, so a
  provider that cannot start is an error reply naming why;
- it asks the process's own health subject (``health.<instance-id>``: replicas
  elsewhere share every other subject of the provider) every second;
- it replaces a process that exits, or fails ``HEALTH_FAILURES`` checks in a row,
  after a backoff doubling from 0.25 s to 10 s (back to 0.25 s once a process
  stayed up ``STABLE_S``);
- it stops it by pid (SIGTERM, then SIGKILL: ``lattice.process``) on
  ``provider.stop`` and when the host shuts down. A host killed outright cannot
  do that, so the process also watches its parent pid and exits when the host is
  gone: no orphans.

Events: ``provider_started``, ``provider_stopped``, ``provider_restarted``,
``provider_health_failed``; the reasons they give, the log lines and the
inventory's view of a provider's config are redacted (``lattice.redact``). Links
live in JetStream, so a restart changes nothing for the components using the
provider but the calls that fail meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import providers
from host.bounds import HostBounds, check_count
from host.errors import HostError
from lattice import tracing
from lattice.connection import Connection, NatsOptions
from lattice.errors import LatticeError
from lattice.events import (
    EventBase,
    ProviderChange,
    ProviderHealthFailed,
    ProviderHealthFailure,
    ProviderRestart,
    ProviderRestarted,
    ProviderStarted,
    ProviderStop,
    ProviderStopped,
)
from lattice.messages import Empty, ProviderDescription, StartProvider
from lattice.options import command_line
from lattice.process import kill_process, spawn, stop_process_async, wait_exit
from lattice.provider_messages import health_operation
from lattice.redact import redacted_config, redacted_text
from lattice.rpc import request_ok
from lattice.subjects import Subjects
from providers.launch import launch_env

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 1.0
HEALTH_TIMEOUT_S = 1.0
HEALTH_FAILURES = 3
# A new process gets this long to answer its first health check (Python start-up
# on a loaded machine); failures before that do not count.
STARTUP_TIMEOUT_S = 15.0
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 10.0
STABLE_S = 10.0
STOP_TIMEOUT_S = 5.0
# A provider's log is set aside (one old copy kept) when a process starts past this size.
LOG_ROTATE_BYTES = 10 * 2**20
# How often a watched process is polled for its exit between health checks.
EXIT_POLL_S = 0.1

Publish = Callable[[EventBase[Any]], Awaitable[None]]
C = TypeVar("C", bound=ProviderChange)


class ProviderError(HostError):
    """A provider could not be started or is already running differently."""


@dataclass
class Supervised:
    """One provider this host runs, and the process currently serving it."""

    request: StartProvider
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    instance_id: str = ""
    spawned_at: float = 0.0
    restarts: int = 0
    healthy: bool = False
    ever_healthy: bool = False  # this process has answered a health check
    task: asyncio.Task[None] | None = None
    # Set before the supervising task is cancelled; its loops check it too, since a
    # cancellation can be lost inside a health check (Python 3.11's wait_for).
    halted: bool = False

    @property
    def provider_id(self) -> str:
        return self.request.provider_id

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def describe(self) -> ProviderDescription:
        alive = self.process is not None and self.process.poll() is None
        return ProviderDescription(
            provider_id=self.provider_id,
            kind=self.request.kind,
            pid=self.pid if alive else None,
            healthy=self.healthy and alive,
            restarts=self.restarts,
            annotations=self.request.annotations,
            config=redacted_config(self.request.config),
        )


class ProviderSupervisor:
    def __init__(
        self,
        nc: Connection,
        subjects: Subjects,
        nats: NatsOptions,
        host_id: str,
        log_dir: Path,
        publish: Publish,
        max_providers: int = HostBounds.max_providers,
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.nats = nats
        self.host_id = host_id
        self.log_dir = log_dir
        self._publish = publish
        self.max_providers = max_providers
        self.providers: dict[str, Supervised] = {}
        self._closed = False

    def describe(self) -> list[ProviderDescription]:
        return [self.providers[p].describe() for p in sorted(self.providers)]

    # -- provider.start / provider.stop ------------------------------------------------

    async def start(self, request: StartProvider) -> ProviderDescription:
        """Spawn the provider and wait until it is healthy; idempotent for the same request.

        A different request for a running provider (new config, say) replaces it without
        a gap: the old process serves until the new one is healthy (both answer in the
        provider's queue group meanwhile), then stops, finishing what it has in flight.
        """
        if self._closed:
            raise ProviderError(f"host {self.host_id} is shutting down")
        launch_env(request.kind, request.config)  # BadProviderConfig before anything runs
        provider_id = request.provider_id
        current = self.providers.get(provider_id)
        if current is not None and current.request == request:
            return current.describe()
        if current is None:  # a replacement takes no extra slot
            check_count("provider processes", len(self.providers), self.max_providers)
        entry = Supervised(request, self.log_dir / f"{provider_id}.log")
        # Who holds the id while the new process starts: the one it replaces, or itself.
        holder = current or entry
        self.providers[provider_id] = holder
        try:
            self._spawn(entry)
            await self._until_healthy(entry)
            if self.providers.get(provider_id) is not holder:  # stopped meanwhile
                raise ProviderError(f"provider {provider_id} was stopped while starting")
        except BaseException:
            if self.providers.get(provider_id) is entry:
                del self.providers[provider_id]
            self._terminate_now(entry)
            raise
        self.providers[provider_id] = entry
        entry.task = asyncio.create_task(self._supervise(entry), name=f"provider-{provider_id}")
        entry.task.add_done_callback(_log_crash)
        started = self._about(entry, ProviderChange)
        await self._publish(ProviderStarted(source=self.host_id, data=started))
        if current is not None:
            await self._halt(current, "replaced")
        return entry.describe()

    async def stop(self, provider_id: str) -> ProviderDescription | None:
        """Stop the provider by pid; None if this host runs no such provider."""
        entry = self.providers.pop(provider_id, None)
        if entry is None:
            return None
        description = entry.describe()
        await self._halt(entry, "stopped")
        return description

    async def close(self) -> None:
        """Stop every provider (host shutdown); no new one starts afterwards."""
        self._closed = True
        entries = list(self.providers.values())
        self.providers.clear()
        await asyncio.gather(*(self._halt(e, "host stopping") for e in entries))

    async def _halt(self, entry: Supervised, reason: str) -> None:
        entry.halted = True
        if entry.task is not None:
            entry.task.cancel()
            await asyncio.wait([entry.task])  # finished, without re-raising its cancellation
        pid = entry.pid
        await self._terminate(entry)
        stop = self._about(entry, ProviderStop, pid=pid, reason=reason)
        await self._publish(ProviderStopped(source=self.host_id, data=stop))
        log.info("provider %s (pid %s) stopped: %s", entry.provider_id, pid, reason)

    # -- processes -----------------------------------------------------------------------

    def _command(self, entry: Supervised) -> list[str]:
        nats_args, _ = command_line(self.nats, self.subjects.lattice)
        args = [
            *provider_command(),
            entry.request.kind,
            "--provider-id",
            entry.provider_id,
            *nats_args,
            "--subject-prefix",
            self.subjects.prefix,
            "--instance-id",
            entry.instance_id,
            "--parent-pid",
            str(os.getpid()),
            "--host-id",
            self.host_id,
        ]
        traces, _ = tracing.exporters()
        if traces:  # the host's spans and its providers' go to the same place
            args += ["--traces", traces]
        return args

    def _environment(self, entry: Supervised) -> dict[str, str]:
        # Secrets travel in the environment: a command line is visible to every user.
        _, nats_env = command_line(self.nats, self.subjects.lattice)
        return {**os.environ, **launch_env(entry.request.kind, entry.request.config), **nats_env}

    def _spawn(self, entry: Supervised) -> None:
        """Start a new process for ``entry`` (synchronously: no await between fork and record)."""
        entry.instance_id = uuid.uuid4().hex[:12]
        entry.healthy = entry.ever_healthy = False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        rotate_log(entry.log_path)
        try:
            # A group of its own: Ctrl-C at the host's terminal reaches the host,
            # which stops the provider in order.
            entry.process = spawn(
                self._command(entry),
                log=entry.log_path,
                own_group=True,
                env=self._environment(entry),
            )
        except OSError as exc:
            entry.process = None
            raise ProviderError(f"cannot run {sys.executable}: {exc}") from exc
        entry.spawned_at = time.monotonic()
        log.info("provider %s started as pid %s", entry.provider_id, entry.pid)

    async def _terminate(self, entry: Supervised) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT_S, then SIGKILL; always reaps the process."""
        if entry.process is not None and not await stop_process_async(
            entry.process, STOP_TIMEOUT_S
        ):
            log.warning("provider %s ignored SIGTERM: it was killed", entry.provider_id)

    def _terminate_now(self, entry: Supervised) -> None:
        if entry.process is not None:
            kill_process(entry.process)

    # -- health and restarts -------------------------------------------------------------

    async def _check(self, entry: Supervised) -> str | None:
        """None if the process answers its health subject, else why not."""
        subject = self.subjects.provider(entry.provider_id, health_operation(entry.instance_id))
        try:
            await request_ok(
                self.nc,
                subject,
                Empty(),
                timeout_s=HEALTH_TIMEOUT_S,
                who=f"provider {entry.provider_id} (pid {entry.pid})",
            )
        except LatticeError as exc:
            return str(exc)
        entry.healthy = entry.ever_healthy = True
        return None

    async def _until_healthy(self, entry: Supervised) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        error: str | None = "no answer yet"
        while time.monotonic() < deadline:
            code = entry.exit_code()
            if code is not None:
                raise ProviderError(f"provider {entry.provider_id} {_exit_reason(entry, code)}")
            error = await self._check(entry)
            if error is None:
                return
            await asyncio.sleep(EXIT_POLL_S)
        raise ProviderError(
            f"provider {entry.provider_id} was not healthy within {STARTUP_TIMEOUT_S:g} s: {error}"
        )

    async def _supervise(self, entry: Supervised) -> None:
        """Watch the process; replace it with backoff whenever it must go."""
        delay = BACKOFF_INITIAL_S
        while not entry.halted:
            reason = await self._watch(entry)
            if entry.halted:
                return
            log.warning(
                "provider %s (pid %s) %s", entry.provider_id, entry.pid, redacted_text(reason)
            )
            await self._terminate(entry)
            if time.monotonic() - entry.spawned_at >= STABLE_S:
                delay = BACKOFF_INITIAL_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            entry.restarts += 1
            try:
                self._spawn(entry)
            except ProviderError as exc:
                log.warning(
                    "restarting provider %s failed: %s", entry.provider_id, redacted_text(str(exc))
                )
                continue  # _watch returns at once for a missing process: next backoff
            restart = self._about(entry, ProviderRestart, reason=reason)
            await self._publish(ProviderRestarted(source=self.host_id, data=restart))

    async def _watch(self, entry: Supervised) -> str:
        """Return once the process exited or failed HEALTH_FAILURES checks in a row."""
        failures = 0
        while not entry.halted:
            code = entry.exit_code()
            if entry.process is None or code is not None:
                entry.healthy = False
                return _exit_reason(entry, code)
            error = await self._check(entry)
            if error is None:
                failures = 0
            elif entry.ever_healthy or time.monotonic() - entry.spawned_at > STARTUP_TIMEOUT_S:
                entry.healthy = False
                failures += 1
                if failures >= HEALTH_FAILURES:
                    failure = self._about(entry, ProviderHealthFailure, error=error)
                    await self._publish(ProviderHealthFailed(source=self.host_id, data=failure))
                    return f"failed {failures} health checks: {error}"
            if entry.process is not None:
                await wait_exit(entry.process, HEALTH_INTERVAL_S, EXIT_POLL_S)
        return "halted"

    def _about(self, entry: Supervised, model: type[C], **extra: Any) -> C:
        """What a provider event says about the provider and its process (``extra``:
        the fields of ``model`` beyond those, or a ``pid`` as it was)."""
        fields: dict[str, Any] = {
            "host_id": self.host_id,
            "provider_id": entry.provider_id,
            "kind": entry.request.kind,
            "pid": entry.pid,
            "restarts": entry.restarts,
        }
        # A reason or an error may quote the process's output: an event shows it redacted.
        shown = {k: redacted_text(v) if isinstance(v, str) else v for k, v in extra.items()}
        return model.model_validate({**fields, **shown})


# The directory holding this project's packages (``providers``, ``lattice``, ...): the
# code the host itself runs, wherever that is (a checkout on PYTHONPATH, an editable
# or a regular install).
PROJECT_ROOT = Path(providers.__file__).resolve().parent.parent
# ``python -I`` ignores PYTHON* variables and the user site and puts neither the
# current directory nor a script's on sys.path, so a ``redis.py`` in the directory a
# host was started from, or a PYTHONPATH entry, cannot take over a provider. The one
# path it then needs is the project's own root, put first explicitly: the host's
# code may come from a checkout that only PYTHONPATH named (a worktree, a test run),
# and an editable install's import hook ranks below sys.path, so ``-I -m`` alone
# would run another copy or none. runpy gives the module ``python -m`` semantics.
BOOTSTRAP = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('providers.run', run_name='__main__', alter_sys=True)"
)


def provider_command() -> list[str]:
    """The start of a provider process's command line; its arguments follow."""
    return [sys.executable, "-I", "-c", BOOTSTRAP, str(PROJECT_ROOT)]


def _log_crash(task: asyncio.Task[None]) -> None:
    # A supervising loop ends when halted (or cancelled); an exception is a bug to see.
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped supervising", task.get_name(), exc_info=task.exception())


def _exit_reason(entry: Supervised, code: int | None) -> str:
    if code is None:
        return "could not be started"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a signal number without a name
            return f"was killed by signal {-code}"
    return f"exited with code {code}: {_last_line(entry)}"


def _last_line(entry: Supervised) -> str:
    """The last line the process wrote (its error message, when it failed to start)."""
    try:
        with open(entry.log_path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - 4096))
            lines = log_file.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return redacted_text(lines[-1]) if lines else "(no output)"


def rotate_log(log_path: Path, max_bytes: int = LOG_ROTATE_BYTES) -> None:
    """Keep a restarting provider's log bounded: ``X.log`` over the limit becomes ``X.log.1``."""
    try:
        if log_path.stat().st_size > max_bytes:
            log_path.replace(log_path.with_name(log_path.name + ".1"))
    except FileNotFoundError:
        pass
