"""Messages between hosts and a policy service, and both ends of the exchange.

A host configured with a policy subject (``lattice host --policy-subject``,
default ``P.L.policy`` from ``lattice.subjects``) asks before it starts a
component or a provider: it sends a ``PolicyRequest`` describing what is to
start and waits for a ``Reply`` whose ``data`` is a ``PolicyDecision``. The
service may be anything on the lattice that answers that subject; ``serve_policy``
is the Python end of it.

What a request tells the service is what it needs to decide and no more: a
provider's config may hold secrets (a Redis password), so only the hosts its
URLs point to (``config_hosts``, ``host:port``) travel, never the values.

``ask_policy`` returns the service's decision. Nobody answering, a late answer,
an error reply or an answer that is not a decision raise ``LatticeError``; the
host turns each into a denial (``host.policy``): no decision is no permission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from nats.aio.client import Client
from pydantic import Field, ValidationError

from lattice.errors import BadMessage, RemoteError
from lattice.messages import Message, Reply, decode
from lattice.responder import Responder
from lattice.rpc import request, serve

PolicyAction = Literal["start_component", "start_provider"]


class PolicyRequest(Message):
    """What a host is about to start, and who the host is."""

    request_id: str
    action: PolicyAction
    host_id: str
    host_labels: dict[str, str] = Field(default_factory=dict)
    # start_component
    component_id: str | None = None
    source: str | None = None
    sha256: str | None = None
    # start_provider
    provider_id: str | None = None
    provider_kind: str | None = None
    config_hosts: list[str] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)


class PolicyDecision(Message):
    """The service's answer; ``reason`` is shown to whoever asked for the start."""

    permitted: bool
    reason: str = ""
    request_id: str | None = None


async def ask_policy(
    nc: Client, subject: str, message: PolicyRequest, *, timeout_s: float
) -> PolicyDecision:
    """One question to the policy service on ``subject``; LatticeError if no decision came."""
    who = f"policy service on {subject}"
    reply = await request(nc, subject, message, timeout_s=timeout_s, who=who)
    if not reply.ok:
        raise RemoteError(f"{who} answered an error: {reply.error}", reply.code or "failed")
    try:
        return PolicyDecision.model_validate(reply.data)
    except ValidationError as exc:
        raise BadMessage(f"{who} answered something other than a decision: {exc}") from exc


async def serve_policy(
    nc: Client,
    subject: str,
    decide: Callable[[PolicyRequest], Awaitable[PolicyDecision]],
    *,
    concurrency: int = 4,
) -> Responder:
    """Answer policy requests on ``subject`` with ``decide``; close the Responder to stop."""

    async def handle(_subject: str, data: bytes) -> Reply:
        decision = await decide(decode(PolicyRequest, data))
        return Reply.success(decision.model_dump(mode="json"))

    return await serve(nc, subject, handle, concurrency=concurrency)
