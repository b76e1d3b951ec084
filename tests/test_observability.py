"""Metrics per component call, and the payload limit of invocations over NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from host.errors import ComponentTrapped
from host.runtime.components import ComponentSpec, HostRuntime
from lattice import tracing
from lattice.connection import NatsOptions, connect
from lattice.invoke import PayloadTooLarge, invoke
from lattice.natsd import NatsServer
from lattice.subjects import Subjects
from providers import contracts
from providers.http_server import HttpRequest

READER = InMemoryMetricReader()
# The global provider can be set once per process; this module is its only user in tests.
tracing.use_meter_provider(MeterProvider(metric_readers=[READER]))

GET = HttpRequest("GET", "/", "", [], b"")


@pytest.fixture
async def runtime(compile_cache: Path) -> AsyncIterator[HostRuntime]:
    rt = HostRuntime(compile_cache)
    yield rt
    await rt.close()


def points(name: str, component: str) -> list[object]:
    data = READER.get_metrics_data()
    assert data is not None
    found = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [
                        p
                        for p in metric.data.data_points
                        if p.attributes.get("wasmlattice.component") == component
                    ]
    return found


async def test_calls_are_counted_timed_and_errors_recorded(
    runtime: HostRuntime, components: dict[str, Path]
) -> None:
    await runtime.start(ComponentSpec("metered", str(components["hello-wat"])))
    await runtime.start(ComponentSpec("failing", str(components["trap"])))
    for _ in range(3):
        await runtime.handle_http("metered", GET)
    with pytest.raises(ComponentTrapped):
        await runtime.call("failing", contracts.HTTP_HANDLER, "handle", GET)
    (calls,) = points("wasmlattice.component.invocations", "metered")
    assert calls.value == 3  # type: ignore[attr-defined]
    (duration,) = points("wasmlattice.component.duration", "metered")
    assert duration.count == 3  # type: ignore[attr-defined]
    (active,) = points("wasmlattice.component.active_instances", "metered")
    assert active.value == 0  # type: ignore[attr-defined]
    (errors,) = points("wasmlattice.component.errors", "failing")
    assert errors.value == 1  # type: ignore[attr-defined]
    assert points("wasmlattice.component.errors", "metered") == []


async def test_oversized_invocation_is_refused_with_both_sizes(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    try:
        payload = b"x" * (nc.max_payload + 1)
        with pytest.raises(PayloadTooLarge) as info:
            await invoke(nc, Subjects(), "greeter", "wasmlattice:demo/greeter", "greet", payload)
        assert str(len(payload)) in str(info.value) and str(nc.max_payload) in str(info.value)
    finally:
        await nc.close()
