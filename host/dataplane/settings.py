"""What builds a runtime and an HTTP front: the daemon's and every member's alike.

``PlaneSettings`` is the part of a host's configuration a data-plane process
needs; ``build_runtime`` and ``build_http`` turn it into parts, so the daemon
and its members (``host.dataplane.member``) are built the same way from one
description. Settings, component specs and routes cross the daemon-member
channel as plain data (``to_wire`` / ``from_wire``, checked by pydantic on
the way in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from host.exports import CodecCache, RemoteCalls
from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.loader import DEFAULT_FETCH_TIMEOUT_S, DEFAULT_MAX_BYTES, LoadPolicy
from host.runtime.pool import HostLimits
from lattice.artifacts import ArtifactStore
from lattice.connection import Connection, NatsOptions
from lattice.kv import BucketCache
from lattice.subjects import Subjects
from providers.http_limits import ConnectionTracker
from providers.http_server import DEFAULT_MAX_BODY, HttpLimits, HttpServer, Route
from providers.keyvalue import KeyValueBackend, MemoryKeyValue, NatsKeyValue
from providers.remote import RemoteKeyValue, remote_backend_name


@dataclass(frozen=True)
class PlaneSettings:
    """How one process of a host serves components: its runtime and its HTTP port."""

    host_id: str
    state_dir: Path
    nats: NatsOptions = field(default_factory=NatsOptions)
    subjects: Subjects = field(default_factory=Subjects)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    call_timeout_s: float = 10.0
    artifact_dirs: tuple[Path, ...] | None = None
    max_component_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    limits: HostLimits = field(default_factory=HostLimits)
    # Trace exporter (lattice.tracing): members export where the daemon does.
    traces: str | None = None


def build_runtime(nc: Connection, settings: PlaneSettings) -> tuple[HostRuntime, CodecCache]:
    """The runtime of one process, with NATS-backed keyvalue and calls to other hosts."""
    backends: dict[str, KeyValueBackend] = {
        "nats": NatsKeyValue(BucketCache(nc)),
        "memory": MemoryKeyValue(),
    }
    codecs = CodecCache()
    # Worker threads send linked calls on connections of their own, as this one connects.
    remote = RemoteCalls(
        nc,
        settings.subjects,
        codecs,
        asyncio.get_running_loop(),
        settings.call_timeout_s,
        direct=settings.nats,
    )
    runtime = HostRuntime(
        settings.state_dir / "compile-cache",
        backends,
        remote=remote.invoke,
        close_remote=remote.close,
        host_id=settings.host_id,
        load_policy=LoadPolicy.of(
            settings.artifact_dirs,
            settings.state_dir,
            settings.max_component_bytes,
            settings.fetch_timeout_s,
            objects=ArtifactStore(nc, settings.subjects).get,
        ),
        limits=settings.limits,
    )
    return runtime, codecs


def build_http(
    runtime: HostRuntime,
    settings: PlaneSettings,
    *,
    accept_here: bool = False,
    tracker: ConnectionTracker | None = None,
) -> HttpServer:
    """The HTTP front of ``runtime`` (not listening yet). ``accept_here``: the daemon's,
    which hands connections to its members; ``tracker``: a member's, whose connections
    the daemon answers should this process die."""
    http = HttpServer(
        runtime.handle_http,
        settings.http_host,
        settings.http_port,
        settings.max_body_bytes,
        settings.http_limits,
        exchanges=runtime.http_exchange,
        accept_here=accept_here,
        tracker=tracker,
    )
    http.host_id = settings.host_id
    return http


def bind_remote_providers(
    runtime: HostRuntime, nc: Connection, subjects: Subjects, provider_ids: Iterable[str]
) -> None:
    """A keyvalue backend per out-of-process provider that links call (providers/remote.py).

    A ``RemoteKeyValue`` holds no state but the connection, so every component
    linked to one provider shares it.
    """
    backends = runtime.keyvalue_backends
    for provider_id in provider_ids:
        name = remote_backend_name(provider_id)
        if name not in backends:
            backends[name] = RemoteKeyValue(nc, subjects, provider_id)


# -- across the channel ----------------------------------------------------------------

_SETTINGS = TypeAdapter(PlaneSettings)
_SPEC = TypeAdapter(ComponentSpec)
_ROUTES = TypeAdapter(list[Route])


def settings_to_wire(settings: PlaneSettings) -> Any:
    return _SETTINGS.dump_python(settings, mode="json")


def settings_from_wire(data: Any) -> PlaneSettings:
    return _SETTINGS.validate_python(data)


def spec_to_wire(spec: ComponentSpec) -> Any:
    return _SPEC.dump_python(spec, mode="json")


def spec_from_wire(data: Any) -> ComponentSpec:
    return _SPEC.validate_python(data)


def routes_to_wire(routes: Sequence[Route]) -> Any:
    return _ROUTES.dump_python(list(routes), mode="json")


def routes_from_wire(data: Any) -> list[Route]:
    return _ROUTES.validate_python(data)
