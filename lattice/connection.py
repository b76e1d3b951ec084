"""Connecting to NATS, with auth/TLS options and errors translated at the boundary.

With a ``.creds`` file the client takes its reply inboxes under ``_INBOX.<user key>``:
a user made by ``lattice.auth`` may subscribe to nothing else there. A publish or
subscribe the server refuses (a permissions violation) is logged as a warning
naming the subject: the server drops it, and a request then times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client

from lattice.auth import read_creds
from lattice.errors import ConnectError
from lattice.redact import redacted, redacted_text

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0

T = TypeVar("T")

# The connection type other packages may name without importing nats.
Connection = Client


@dataclass(frozen=True)
class NatsOptions:
    """How to reach the lattice's NATS server; all optional but the URL."""

    url: str = "nats://127.0.0.1:4222"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    credentials_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    name: str = "wasmlattice"


def tls_context(options: NatsOptions) -> ssl.SSLContext | None:
    if not (options.tls_ca_file or options.tls_cert_file):
        return None
    context = ssl.create_default_context(cafile=options.tls_ca_file)
    if options.tls_cert_file:
        context.load_cert_chain(options.tls_cert_file, options.tls_key_file)
    return context


async def connect(options: NatsOptions, *, reconnect: bool = True) -> Client:
    """Connect, or raise ConnectError naming the URL and how to get a server."""

    connected: list[Client] = []
    shown = redacted(options.url)  # the URL in logs and errors, without a password

    async def on_disconnect() -> None:
        # Closing or draining on purpose also disconnects: only warn about real losses.
        closing = connected and (connected[0].is_closed or connected[0].is_draining)
        if reconnect and not closing:
            log.warning("disconnected from NATS at %s; reconnecting", shown)

    async def on_reconnect() -> None:
        log.info("reconnected to NATS at %s", shown)

    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        if "permissions violation" in str(exc).lower():
            log.warning("NATS refused (%s): %s", options.name, exc)
        else:
            log.debug("NATS client error: %s", exc)

    try:
        # nats-py retries the first connection like a reconnect (forever with -1):
        # bound the whole attempt so a missing server is a clear error, not a hang.
        client = await within(
            _connect(options, reconnect, on_disconnect, on_reconnect, on_error), CONNECT_TIMEOUT_S
        )
        connected.append(client)
        return client
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        refusal = _refusal(exc, errors)
        if refusal is not None:
            raise ConnectError(
                f"the NATS server at {shown} refused the connection ({refusal}): "
                "check --nats-user/--nats-password, --nats-token or --nats-creds"
            ) from exc
        raise ConnectError(
            f"no NATS server at {shown}: start one with `lattice up` "
            f"or pass --nats-url ({redacted_text(str(exc)) or type(exc).__name__})"
        ) from exc


# Attempts given up on, still being cancelled (see ``within``); held so they are not lost.
_abandoned: set[asyncio.Task[Any]] = set()


async def within(coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """``coro``'s result, or TimeoutError after ``timeout_s`` even if it will not stop.

    ``asyncio.wait_for`` cancels the attempt and then waits for it to end. nats-py's
    connect loop can swallow that cancellation (its ``_close`` catches
    CancelledError while it tears a failed attempt down) and go on retrying
    forever: a wrong password with reconnects on hung a test that way. Here the
    attempt is abandoned instead, and cancelled again until it does end.
    """
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError(f"gave up after {timeout_s:g} s")
    if task.cancelled():
        # Cancelled from inside (nats-py's close cancels its own waits), not by our
        # caller: an error like any other, not a CancelledError that would look
        # like a request to stop to whoever awaits us.
        raise RuntimeError("cancelled before it ended")
    return task.result()


async def close_connection(nc: Client, timeout_s: float = 3.0) -> None:
    """Drain ``nc`` (what is in flight is sent), closing it outright if that takes
    longer than ``timeout_s`` or fails; never raises, never hangs (see ``within``)."""
    try:
        await within(nc.drain(), timeout_s)
        return
    except Exception as exc:  # shutdown goes on whatever NATS does
        log.warning("draining the NATS connection failed: %s", str(exc) or type(exc).__name__)
    try:
        await within(nc.close(), timeout_s)
    except Exception as exc:
        log.debug("closing the NATS connection failed: %s", str(exc) or type(exc).__name__)


def _abandon(task: asyncio.Task[Any]) -> None:
    reaper = asyncio.get_running_loop().create_task(_cancel_until_done(task))
    _abandoned.add(reaper)
    reaper.add_done_callback(_abandoned.discard)


async def _cancel_until_done(task: asyncio.Task[Any], every_s: float = 0.25) -> None:
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)
    if task.cancelled() or task.exception() is not None:
        return  # the exception is retrieved: no "never retrieved" warning
    client = task.result()
    if isinstance(client, Client):  # it connected after all: nobody will use it
        with contextlib.suppress(Exception):
            await within(client.close(), 2.0)


def _refusal(exc: Exception, errors: list[Exception]) -> str | None:
    """The server's own reason when it answered but refused us (bad credentials)."""
    for candidate in (exc, *reversed(errors)):
        text = str(candidate)
        if "Authorization" in text or "Authentication" in text or "permissions" in text.lower():
            return text.removeprefix("nats: ").strip("'")
    return None


async def _connect(
    options: NatsOptions, reconnect: bool, on_disconnect: Any, on_reconnect: Any, on_error: Any
) -> Client:
    extra: dict[str, Any] = {}
    if options.credentials_file:
        extra["inbox_prefix"] = read_creds(options.credentials_file).inbox_prefix
    return await nats.connect(
        options.url,
        name=options.name,
        user=options.user,
        password=options.password,
        token=options.token,
        user_credentials=options.credentials_file,
        tls=tls_context(options),
        allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 1,
        reconnect_time_wait=0.25,
        connect_timeout=2,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        **extra,
    )
