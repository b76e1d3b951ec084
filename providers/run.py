"""Run an out-of-process provider: ``python -m providers.run KIND --provider-id ID ...``.

A provider process serves one backend to the whole lattice over NATS (see
``providers.remote``); components on any host reach it by linking with config
``provider=<ID>``. A host's supervisor (``host.supervisor``) starts one with
``provider.start``, but it runs just as well by hand::

    python -m providers.run keyvalue-redis --provider-id kv-redis \\
        --nats-url nats://127.0.0.1:4222 --redis-url redis://127.0.0.1:6379/0

Kinds and their config (``StartProvider.config``) are listed in ``catalog.kinds``.
Each config value reaches the process in an environment variable rather than on
its command line, which every user of the machine can read (a Redis URL may hold
a password); the matching flags are there for running by hand.

Start-up checks every dependency: if Redis or NATS cannot be reached the process
exits with status 1 and one line on stderr saying which. After that an outage
never ends the process: calls fail, health answers ``unavailable``, and both
recover when the dependency does. SIGTERM or SIGINT is a clean exit (status 0),
and so is the end of the parent host (``--parent-pid``), so a host killed with
SIGKILL leaves no provider behind. Logs go to stderr, redacted, one line per message.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from lattice import eventloop, tracing
from lattice.connection import NatsOptions, close_connection, connect
from lattice.errors import ConnectError
from lattice.options import NatsFlags, nats_options
from lattice.process import stop_on_signals, watch_parent
from lattice.redact import SafeFormatter
from lattice.subjects import DEFAULT_PREFIX, Subjects
from providers.keyvalue import KeyValueError
from providers.redis_kv import DEFAULT_PREFIX as DEFAULT_KEY_PREFIX
from providers.redis_kv import RedisKeyValue, redacted
from providers.remote import serve_keyvalue

log = logging.getLogger("providers.run")


class StartupError(Exception):
    """A dependency is unreachable at start: exit 1 with this message."""


@dataclass(frozen=True)
class RunOptions:
    provider_id: str
    nats: NatsOptions
    subjects: Subjects
    instance_id: str | None
    parent_pid: int | None
    host_id: str


# -- the command line -----------------------------------------------------------------


@click.group()
def main() -> None:
    """Run an out-of-process provider for a wasmlattice lattice."""


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The NATS flags (``lattice.options``, shared with the CLI) and the provider's own."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--provider-id", required=True, help="The id components link to."),
        nats_options,
        click.option("--subject-prefix", default=DEFAULT_PREFIX),
        click.option("--instance-id", default=None, help="This process's health subject."),
        click.option("--parent-pid", type=int, default=None, help="Exit when it is gone."),
        click.option("--host-id", default="", help="The host running this (names it in traces)."),
        click.option(
            "--traces",
            default=None,
            envvar="WASMLATTICE_TRACES",
            help="Trace exporter: console, otlp or file:PATH.",
        ),
        click.option("-v", "--verbose", count=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_options(kw: dict[str, Any]) -> RunOptions:
    provider_id = kw["provider_id"]
    flags: NatsFlags = kw["nats"]
    nats = flags.options(name=f"provider-{provider_id}")
    try:
        subjects = Subjects(lattice=flags.lattice, prefix=kw["subject_prefix"])
        subjects.provider(provider_id, "kv")  # checks the id
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        tracing.setup("wasmlattice-provider", kw["traces"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--traces") from exc
    return RunOptions(
        provider_id, nats, subjects, kw["instance_id"], kw["parent_pid"], kw["host_id"]
    )


def _setup_logging(verbose: int, provider_id: str) -> None:
    # Redacted, one line per message (lattice.redact.SafeFormatter): the log is a file
    # the host quotes from (its last line explains an exit) into events and replies.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        SafeFormatter(f"%(asctime)s %(levelname)-7s provider {provider_id} %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


@main.command("keyvalue-redis")
@click.option("--redis-url", envvar="WASMLATTICE_REDIS_URL", required=True)
@click.option("--key-prefix", envvar="WASMLATTICE_REDIS_KEY_PREFIX", default=DEFAULT_KEY_PREFIX)
@common_options
def keyvalue_redis(redis_url: str, key_prefix: str, verbose: int, **kw: Any) -> None:
    """Serve wasi:keyvalue from Redis (one hash per bucket)."""
    options = _run_options(kw)
    _setup_logging(verbose, options.provider_id)
    try:
        backend = RedisKeyValue(redis_url, key_prefix)
    except KeyValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        eventloop.run(_serve_redis(options, backend))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc


# -- serving ---------------------------------------------------------------------------


async def _serve_redis(options: RunOptions, backend: RedisKeyValue) -> None:
    try:
        try:
            await backend.ping()
        except KeyValueError as exc:
            raise StartupError(f"cannot reach {exc}") from exc
        log.info("Redis at %s answers", redacted(backend.url))
        await _serve_on_nats(options, backend)
    finally:
        await backend.close()


async def _serve_on_nats(options: RunOptions, backend: RedisKeyValue) -> None:
    try:
        nc = await connect(options.nats)
    except ConnectError as exc:
        raise StartupError(str(exc)) from exc
    try:
        service = await serve_keyvalue(
            nc,
            options.subjects,
            options.provider_id,
            backend,
            instance_id=options.instance_id,
            host_id=options.host_id,
        )
        log.info(
            "serving keyvalue as %s (instance %s) on lattice %s",
            options.provider_id,
            service.instance_id,
            options.subjects.lattice,
        )
        reason = await _until_stopped(options.parent_pid)
        log.info("stopping: %s", reason)
        await service.close()
    finally:
        await close_connection(nc)  # answers in flight are sent before it closes


async def _until_stopped(parent_pid: int | None) -> str:
    """Wait for SIGTERM/SIGINT or, with ``parent_pid``, for the parent to go away."""
    stop = asyncio.Event()
    stop_on_signals(stop.set)
    waits: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait(), name="provider-stop-signal")}
    if parent_pid is not None:
        waits.add(asyncio.create_task(watch_parent(parent_pid), name="provider-parent-watch"))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.wait(waits)
    return "signal received" if stop.is_set() else f"parent process {parent_pid} is gone"


if __name__ == "__main__":
    main()
