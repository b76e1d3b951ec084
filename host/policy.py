"""What a host may start: a local policy file, a policy service, or both.

Before a host starts a component (``component.scale``) or a provider process
(``provider.start``) it asks its ``PolicyGate``. With nothing configured every
start is allowed. A denial starts nothing: the caller gets ``PolicyDenied``
("denied by policy: <reason>") and the lattice a ``policy_denied`` event.

**The policy file** (``lattice host --policy FILE``, YAML or JSON) lists what is
allowed; a list left out allows anything, an empty list allows nothing::

    components:
      sources: ["/opt/wasm/", "https://wasm.example.com/*.wasm"]  # prefixes or globs
      registries: ["wasm.example.com", "registry.local:5000"]     # hosts of URL sources
      digests: ["sha256:4f1c..."]                                 # sha256 pins required
    providers:
      kinds: ["keyvalue-redis"]
      config_hosts: ["redis.internal:6379"]                       # hosts of config URLs

A pattern with ``*``, ``?`` or ``[`` is a glob (``*`` crosses ``/``), anything
else a prefix: end a directory or URL prefix with ``/``. Sources are matched
after ``..`` segments are resolved, so ``/opt/wasm/../x`` is not under
``/opt/wasm/``. ``registries`` constrains sources that are URLs (files are
constrained by ``sources``); ``digests`` requires a pin, which the loader then
checks against the bytes. A host pattern without a port matches any port.

**The policy service** (``--policy-subject [SUBJECT]``) answers a
``lattice.policy_messages.PolicyRequest`` per start. No answer within the
timeout, no service at all, or an answer that is not a decision all deny: a
host that was told to ask does not start what nobody permitted. A request the
host already admitted (the same request, re-applied when a link changes) is
not asked again.

The decisions on a file (``decide_component``, ``decide_provider``) and the
description sent to a service are pure functions; ``PolicyGate`` does the IO.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import posixpath
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from host.errors import PolicyDenied, PolicyFileError
from lattice.connection import Connection
from lattice.errors import LatticeError
from lattice.events import Denial, EventBase
from lattice.events import PolicyDenied as PolicyDeniedEvent
from lattice.messages import ScaleComponent, StartProvider
from lattice.policy_messages import PolicyRequest, ask_policy

log = logging.getLogger(__name__)

DEFAULT_POLICY_TIMEOUT_S = 2.0
_GLOB_CHARS = frozenset("*?[")
_DIGEST = r"^(sha256:)?[0-9a-fA-F]{64}$"

Publish = Callable[[EventBase[Any]], Awaitable[None]]


# -- the policy file ---------------------------------------------------------------------


class _Rules(BaseModel):
    # A typo in a policy file must be an error, not a silently ignored rule.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentRules(_Rules):
    sources: tuple[str, ...] | None = None
    registries: tuple[str, ...] | None = None
    digests: tuple[str, ...] | None = None

    def model_post_init(self, _context: Any) -> None:
        for digest in self.digests or ():
            if not _is_digest(digest):
                raise ValueError(f"digest {digest!r} is not a sha256 (64 hex digits)")


class ProviderRules(_Rules):
    kinds: tuple[str, ...] | None = None
    config_hosts: tuple[str, ...] | None = None


class LocalPolicy(_Rules):
    """A policy file's rules; the default allows everything."""

    components: ComponentRules = Field(default_factory=ComponentRules)
    providers: ProviderRules = Field(default_factory=ProviderRules)


def load_policy(path: Path) -> LocalPolicy:
    """Read a YAML or JSON policy file; PolicyFileError says what is wrong with it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyFileError(f"cannot read policy file {path}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyFileError(f"policy file {path} is not valid YAML/JSON: {exc}") from exc
    try:
        return LocalPolicy.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyFileError(f"policy file {path}: {problems}") from exc


# -- decisions (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


ALLOW = Decision(True)


def decide_component(policy: LocalPolicy, request: ScaleComponent) -> Decision:
    """May ``request``'s component start under ``policy``?"""
    rules = policy.components
    source = normalized_source(request.source)
    shown = redacted(source)
    if rules.sources is not None and not any(_matches(source, p) for p in rules.sources):
        return Decision(False, f"component source {shown} is not among the allowed sources")
    where = url_host(source)
    if rules.registries is not None and where is not None:
        if not _host_allowed(where, rules.registries):
            return Decision(False, f"component registry {where} is not an allowed registry")
    if rules.digests is not None:
        pins = {_digest(d) for d in rules.digests}
        if request.sha256 is None:
            return Decision(False, f"component {shown} has no sha256 pin (the policy needs one)")
        if not _is_digest(request.sha256) or _digest(request.sha256) not in pins:
            return Decision(False, f"component digest {request.sha256} is not an allowed digest")
    return ALLOW


def decide_provider(policy: LocalPolicy, request: StartProvider) -> Decision:
    """May ``request``'s provider process start under ``policy``?"""
    rules = policy.providers
    if rules.kinds is not None and request.kind not in rules.kinds:
        return Decision(False, f"provider kind {request.kind} is not an allowed kind")
    if rules.config_hosts is not None:
        for key, where in config_hosts(request.config):
            if not _host_allowed(where, rules.config_hosts):
                return Decision(
                    False, f"provider config {key} points to {where}, not an allowed host"
                )
    return ALLOW


def component_request(
    host_id: str, labels: Mapping[str, str], request: ScaleComponent, request_id: str
) -> PolicyRequest:
    """What a policy service is told about a component start."""
    return PolicyRequest(
        request_id=request_id,
        action="start_component",
        host_id=host_id,
        host_labels=dict(labels),
        component_id=request.component_id,
        source=redacted(request.source),
        sha256=request.sha256,
        annotations=request.annotations,
    )


def provider_request(
    host_id: str, labels: Mapping[str, str], request: StartProvider, request_id: str
) -> PolicyRequest:
    """What a policy service is told about a provider start (never the config's values)."""
    return PolicyRequest(
        request_id=request_id,
        action="start_provider",
        host_id=host_id,
        host_labels=dict(labels),
        provider_id=request.provider_id,
        provider_kind=request.kind,
        config_hosts=sorted({where for _, where in config_hosts(request.config)}),
        annotations=request.annotations,
    )


def normalized_source(source: str) -> str:
    """``source`` with ``.`` and ``..`` path segments resolved (no filesystem access)."""
    parts = urlsplit(source)
    if parts.scheme and parts.netloc:
        path = posixpath.normpath(parts.path) if parts.path else ""
        if path == ".":
            path = ""
        return urlunsplit(parts._replace(path=path))
    if parts.scheme == "file":
        return "file://" + posixpath.normpath(source[len("file://") :])
    return posixpath.normpath(source)


def url_host(source: str) -> str | None:
    """``host`` or ``host:port`` of a URL, None for a path."""
    parts = urlsplit(source)
    if not parts.netloc or parts.scheme == "file":
        return None
    try:
        port = parts.port
    except ValueError:
        return parts.netloc.rpartition("@")[2].lower()  # an invalid port: match it as given
    host = (parts.hostname or "").lower()
    return f"{host}:{port}" if port is not None else host


def config_hosts(config: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, host[:port]) for each config value that is a URL (``redis_url``, say)."""
    found = []
    for key in sorted(config):
        value = config[key]
        if "://" in value:
            where = url_host(value)
            if where is not None:
                found.append((key, where))
    return found


def redacted(source: str) -> str:
    """The source without a password, fit for errors and events."""
    parts = urlsplit(source)
    if parts.password is None:
        return source
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def _matches(value: str, pattern: str) -> bool:
    if _GLOB_CHARS & set(pattern):
        return fnmatch.fnmatchcase(value, pattern)
    return value.startswith(pattern)


def _host_allowed(where: str, patterns: tuple[str, ...]) -> bool:
    host = where.rsplit(":", 1)[0] if ":" in where else where
    for pattern in patterns:
        pattern = pattern.lower()
        candidates = (where,) if ":" in pattern else (host,)
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            return True
    return False


def _is_digest(text: str) -> bool:
    return re.match(_DIGEST, text) is not None


def _digest(text: str) -> str:
    return text.lower().removeprefix("sha256:")


# -- the gate (IO) -----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyService:
    """Where a host asks, and how long it waits for the answer."""

    nc: Connection
    subject: str
    timeout_s: float = DEFAULT_POLICY_TIMEOUT_S


class PolicyGate:
    """Asks the file, then the service; a denial is published and raised."""

    def __init__(
        self,
        host_id: str,
        publish: Publish,
        local: LocalPolicy | None = None,
        service: PolicyService | None = None,
    ) -> None:
        self.host_id = host_id
        self.local = local
        self.service = service
        self._publish = publish

    async def check_component(self, request: ScaleComponent, labels: Mapping[str, str]) -> None:
        """Return if the component may start; else publish ``policy_denied`` and raise."""
        decision = ALLOW if self.local is None else decide_component(self.local, request)
        if decision.allowed and self.service is not None:
            question = component_request(self.host_id, labels, request, uuid.uuid4().hex)
            decision = await _ask(self.service, question)
        if not decision.allowed:
            await self._deny(
                decision.reason,
                what="start_component",
                component_id=request.component_id,
                source=redacted(request.source),
            )

    async def check_provider(self, request: StartProvider, labels: Mapping[str, str]) -> None:
        """Return if the provider may start; else publish ``policy_denied`` and raise."""
        decision = ALLOW if self.local is None else decide_provider(self.local, request)
        if decision.allowed and self.service is not None:
            question = provider_request(self.host_id, labels, request, uuid.uuid4().hex)
            decision = await _ask(self.service, question)
        if not decision.allowed:
            await self._deny(
                decision.reason,
                what="start_provider",
                provider_id=request.provider_id,
                kind=request.kind,
            )

    async def _deny(
        self,
        reason: str,
        what: Literal["start_component", "start_provider"],
        **details: str,
    ) -> None:
        log.warning("policy denied %s %s: %s", what, details, reason)
        denial = Denial(host_id=self.host_id, what=what, reason=reason, **details)
        await self._publish(PolicyDeniedEvent(source=self.host_id, data=denial))
        raise PolicyDenied(reason)


async def _ask(service: PolicyService, question: PolicyRequest) -> Decision:
    """The service's decision; none (no answer, an error, nonsense) is a denial."""
    try:
        answer = await ask_policy(
            service.nc, service.subject, question, timeout_s=service.timeout_s
        )
    except LatticeError as exc:
        return Decision(False, f"no decision from the policy service ({exc})")
    if answer.permitted:
        return ALLOW
    return Decision(False, answer.reason or f"the policy service on {service.subject} said no")
