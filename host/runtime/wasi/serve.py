"""Serving one request to a ``wasi:http/incoming-handler`` export from an instance pool.

The runtime hands the http-server provider a ``StreamHandler`` per component;
this is its body: make the exchange (``http_types.Exchange``), call ``handle``
on an instance with its two handles, then check what the guest did: a response
set and its body finished, and everything sent reached the client. Failures
become ``HandlerError`` with the status the provider answers (500, 504, 503, or
the request body's own 413/408/400 when a broken body made the guest fail).

Instance reuse (``host.runtime.wasi.reuse``): an instance is put back for the
next request only when the guest answered completely. A failure on a reused
instance before anything was sent is retried once on a fresh instance; when
the fresh one answers, reusing is what broke the component, and its pool
switches to fresh instances for good (logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from host.errors import DeadlineExceeded, HostError, Overloaded, UnknownComponent
from host.runtime.inline import Abandoned
from host.runtime.pool import CallInfo, InstancePool
from host.runtime.wasi.host import WasiHost
from host.runtime.wasi.http_types import Exchange
from providers.http_server import HandlerError, ResponseSink, StreamedRequest

__all__ = ["ExchangeTarget", "serve_exchange"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExchangeTarget:
    """A running component that exports ``wasi:http/incoming-handler``."""

    component_id: str
    wasi: WasiHost
    pool: InstancePool
    export: str  # the exported interface's name, with its version
    deadline_s: float


async def serve_exchange(
    target: ExchangeTarget, request: StreamedRequest, sink: ResponseSink
) -> None:
    """Serve ``request`` into ``sink``; raises ``HandlerError`` when it fails."""
    info = CallInfo()
    exchange = target.wasi.exchange(request, sink, target.deadline_s)
    try:
        try:
            await _attempt(target, exchange, info, fresh=False, inline=True)
            return
        except Abandoned:
            # Given up on the event loop's thread before anything reached the client
            # or was read from it (``host.runtime.inline``): again, on a worker.
            info = CallInfo()
            exchange = target.wasi.exchange(request, sink, target.deadline_s)
            await _attempt(target, exchange, info, fresh=False)
            return
    except HandlerError as failure:
        if not (info.reused and exchange.replayable and _retryable(failure)):
            raise
        first = failure
    # The reused instance failed before anything was sent: try a fresh one.
    exchange = target.wasi.exchange(request, sink, target.deadline_s)
    await _attempt(target, exchange, CallInfo(), fresh=True)
    if target.pool.reuse:
        target.pool.stop_reuse()
        log.warning(
            "component %s failed on a reused instance (%s) and answered on a fresh one: "
            "it gets a fresh instance per request from now on (set http_instance_reuse=false "
            "to say so up front)",
            target.component_id,
            first,
        )


async def _attempt(
    target: ExchangeTarget,
    exchange: Exchange,
    info: CallInfo,
    *,
    fresh: bool,
    inline: bool = False,
) -> None:
    # The guest's worker thread runs in a copy of this context: host functions
    # find the exchange's deadline and register its handles there.
    token = exchange.scope.activate()
    try:
        handles = exchange.handles()
        try:
            await target.pool.call(
                target.export,
                "handle",
                *handles,
                fresh=fresh,
                info=info,
                keep=lambda: exchange.answered,
                inline=inline,
            )
        except HostError as exc:
            raise _failed(exchange, exc) from exc
        exchange.release()
        await _complete(target.component_id, exchange)
    finally:
        exchange.scope.deactivate(token)
        exchange.close()


def _retryable(failure: HandlerError) -> bool:
    """A guest's failure (500) may be reuse's doing; running out of time or slots is not."""
    return failure.status == 500


async def _complete(component_id: str, exchange: Exchange) -> None:
    """After ``handle`` returned: the response must be set and its body finished."""
    if not exchange.responded:
        if exchange.request_error is not None:
            error = exchange.request_error
            raise HandlerError(error.status, error.public_message)
        raise HandlerError(500, "the component failed", f"component {component_id} set no response")
    if exchange.error_code is not None:
        raise HandlerError(
            500,
            "the component failed",
            f"component {component_id} answered with error {exchange.error_code.tag}",
        )
    if exchange.aborted is not None or not exchange.finished:
        reason = exchange.aborted or "returned before finishing the response body"
        raise HandlerError(500, "the component failed", f"component {component_id} {reason}")
    if not await exchange.settle(max(exchange.scope.remaining(), 1.0)):
        raise HandlerError(500, "the response did not reach the client", component_id)


def _failed(exchange: Exchange, exc: HostError) -> HandlerError:
    """The status of a failed exchange: a broken request body first (the guest's
    failure is then its consequence), else what the call's failure means."""
    error = exchange.request_error
    if error is not None and not exchange.responded:
        return HandlerError(error.status, error.public_message, str(exc))
    if isinstance(exc, DeadlineExceeded):
        return HandlerError(504, "the component did not answer in time", str(exc))
    if isinstance(exc, Overloaded | UnknownComponent):
        return HandlerError(503, "the component is unavailable", str(exc))
    return HandlerError(500, "the component failed", str(exc))
